"""Sales: the domain and its one change path. Domain types and refusals, the rules, a
batch's view, group commit and its queue, the lock strategies, the in-memory waiting
lists, idempotent answers, and the service that is their entry point.

May import storage, config and metrics; never Flask, never http or notify.
"""
