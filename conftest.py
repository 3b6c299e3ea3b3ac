"""Collection for the whole tree.

A compiled module cannot be collected for its doctests (pytest finds the extension,
not the file it collects); tests/test_native_detection.py runs those doctests from source.
"""

from monitor import native

collect_ignore = [str(p) for p in native.compiled_sources()] if native.COMPILED else []
