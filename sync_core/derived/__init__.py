"""Data derived from the archive for people to look at it; never an original, and nothing here writes to
the data container.

Albums and views: :mod:`.albums` (user albums in reserved Table partitions), :mod:`.folders` (every source
folder is an album), :mod:`.timeline` (capture date, falling back to mtime).

Renditions (thumbnails) of the originals, and the facts learnt while making them, one module per stage:

* :mod:`.blob_reader` — a seekable, bounded-buffer reader over ranged blob downloads (videos are read by
  range, never whole);
* :mod:`.decoders` — one function per kind (image, RAW, video) that turns bytes into an oriented sRGB
  picture and the original's facts, within a pixel limit;
* :mod:`.renditions` — the picture to the two WebP renditions (no metadata), and their names;
* :mod:`.facts` — the facts as Table properties, and reading them back;
* :mod:`.thumbnail_run` — the steps of a run (plan, one index partition, summary), shared by the Durable
  activities and ``azphotosync thumbnails``.
"""
