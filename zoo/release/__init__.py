"""Releases on a hub: publish a release tree, pull one into the cache.

:mod:`~zoo.release.publish` (write a release tree) and :mod:`~zoo.release.pull` (what ``zoo pull``
does with a hub's index). They sit above :mod:`zoo.weights` (a release carries the weights, a pull
may regenerate reference weights), which sits above the hub's transport, :mod:`zoo.hub`.
"""
