"""posgate's pure domain engine: bytes and objects in, objects or typed errors out.

Nothing in this package opens files or sockets, reads the clock or the environment, or imports
``gateway``; every instant and every piece of reference data arrives as an argument.
"""
