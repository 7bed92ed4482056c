"""Prebuilt artifacts on a static file host: publish a release tree, pull it into the cache.

Modules: :mod:`~zoo.hub.resolve` (which hub, offline or not, URL policy),
:mod:`~zoo.hub.index` (the ``index.json`` schema), :mod:`~zoo.hub.publish` (write a release
tree), :mod:`~zoo.hub.download` (one verified, resumable, retried transfer),
:mod:`~zoo.hub.store` (the hash-keyed cache: install, list, remove, locks) and
:mod:`~zoo.hub.pull` (what ``zoo pull`` and the weights resolution do with them).
"""
