"""Derived data: renditions (thumbnails) of the originals, and the facts learnt while making them.

Nothing here writes to the data container. The stages, one module each:

* :mod:`.blob_reader` — a seekable, bounded-buffer reader over ranged blob downloads (videos are read by
  range, never whole);
* :mod:`.decoders` — one function per kind (image, RAW, video) that turns bytes into an oriented sRGB
  picture and the original's facts, within a pixel limit;
* :mod:`.renditions` — the picture to the two WebP renditions (no metadata), and their names;
* :mod:`.facts` — the facts as Table properties, and reading them back;
* :mod:`.thumbnail_run` — the steps of a run (plan, one index partition, summary), shared by the Durable
  activities and ``azphotosync thumbnails``.
"""
