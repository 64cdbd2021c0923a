"""Compatibility layer, imported before anything touches mmseg.

Owned by the compat work item: installs the fallback ``mmcv.ops`` when ``mmcv._ext`` is
missing, registers the CPU-capable SyncBN and the weights-only checkpoint allowlist.
"""
