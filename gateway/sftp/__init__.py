"""The embedded SFTP server adapter: what the composition root imports.

``SftpServer`` (listener, host key) lives in ``gateway.sftp.server``, logins in
``gateway.sftp.auth``; what an account sees and may do in its spool folder (confinement,
permissions) in ``gateway.sftp.filesystem``, the session's audit line, quota and hand-over of
uploads in ``gateway.sftp.account``, with client path rules in ``gateway.sftp.paths`` and
crash-safe uploads in ``gateway.sftp.handles``.
This module only gathers the public names.
"""

from __future__ import annotations

from gateway.sftp.account import SftpAccount, UploadCallback
from gateway.sftp.handles import remove_stale_uploads
from gateway.sftp.server import SftpServer, SftpStartError, load_or_create_host_key

__all__ = [
    "SftpAccount",
    "SftpServer",
    "SftpStartError",
    "UploadCallback",
    "load_or_create_host_key",
    "remove_stale_uploads",
]
