"""Notify: what happens after a commit. The journal's reading side (history), webhook
subscriptions, their delivery and sender, the destination guard, and the worker (which
also settles lapsed offers through the sales service).

May import sales, storage, config and metrics; never Flask, never http.
"""
