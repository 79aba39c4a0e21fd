"""Reply-queue confinement: a firm's replies go only to its own reply queues.

AMQP user ``U`` owns the queues ``reply.U`` and ``reply.U.<anything>``, except what lies in the
namespace of a longer user name; a request whose ``reply_to`` is another user's queue is
dead-lettered by the dispatcher (``gateway.amqp.dispatch``). Direct reply-to is always allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping
from collections.abc import Set as AbstractSet

from gateway.amqp.direct_reply import is_direct_reply_to

REPLY_QUEUE_PREFIX = "reply."


def reply_queue_owner(reply_to: str, users: Iterable[str]) -> str | None:
    """The AMQP user whose reply namespace holds the queue ``reply_to``, or None.

    User ``U`` owns ``reply.U`` and ``reply.U.<anything>``, except what lies in the namespace of
    a longer user name: with users ``a`` and ``a.b``, ``reply.a.b`` and ``reply.a.b.x`` belong to
    ``a.b``, never to ``a``. Ownership is decided by the longest matching name, so no user name
    can be chosen to reach into another user's queues.
    """
    known = _container(users)
    return _longest_owner(reply_to, known.__contains__)


def _container(users: Iterable[str]) -> Container[str]:
    """``users`` as something with a fast ``in`` (a dict or set as it is)."""
    if type(users) in (dict, set, frozenset) or isinstance(users, AbstractSet | Mapping):
        return users  # type: ignore[return-value]
    return set(users)


def _longest_owner(reply_to: str, is_user: Callable[[str], bool]) -> str | None:
    """The longest user name ``U`` with ``reply_to`` = ``reply.U`` or ``reply.U.<anything>``:
    the names to try are what follows ``reply.``, cut at each of its dots, longest first (a few
    set look-ups per message instead of a pass over every user)."""
    if not reply_to.startswith(REPLY_QUEUE_PREFIX):
        return None
    rest = reply_to[len(REPLY_QUEUE_PREFIX) :]
    if is_user(rest):
        return rest
    cut = rest.rfind(".")
    while cut >= 0:
        if is_user(rest[:cut]):
            return rest[:cut]
        cut = rest.rfind(".", 0, cut)
    return None


def reply_to_allowed(user: str, reply_to: str, users: Iterable[str] = ()) -> bool:
    """A firm's replies go to its own reply queues (see ``reply_queue_owner``) or direct reply-to.

    ``users`` are every AMQP user posgate knows (``user`` among them or not).
    """
    if is_direct_reply_to(reply_to):
        return True
    known = _container(users)
    return _longest_owner(reply_to, lambda name: name == user or name in known) == user
