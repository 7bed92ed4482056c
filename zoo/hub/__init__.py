"""A hub: prebuilt weights and artifacts on a static file host, and the transport from it.

Modules: :mod:`~zoo.hub.resolve` (which hub, offline or not, URL policy),
:mod:`~zoo.hub.index` (the ``index.json`` schema), :mod:`~zoo.hub.download` (one verified,
resumable, retried transfer), :mod:`~zoo.hub.store` (the hash-keyed cache: install, list, remove,
locks) and :mod:`~zoo.hub.fetch` (the index and one variant's weights, for :mod:`zoo.weights`).
Publishing and pulling a release build on these and on the weights: :mod:`zoo.release`.
"""
