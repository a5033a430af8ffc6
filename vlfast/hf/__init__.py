"""The transformers integration: processor classes that subclass the stock ones and compute with vlfast.

:mod:`.common` (the mixin both processors share) <- :mod:`.image_processor`, :mod:`.video_processor`
<- :mod:`.patching` (``patch_processor``). :mod:`vlfast.processor` is the public entry point.
"""
