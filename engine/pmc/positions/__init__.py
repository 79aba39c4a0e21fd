"""Positions: the model, the 346 file reader, what-if rows as JSON.

``model`` holds the batch, the file and the problem kinds and reasons, ``checks`` the field checks
every source of positions shares, ``read`` the 346 CSV and fixed-width ASCII reader and ``rows``
the what-if positions given as plain records.
"""
