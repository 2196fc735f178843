"""Long jobs: resumable video segments, local worker processes and Ray (see ``segments``).

``workdir``/``manifest``/``parts`` (the work folder that is ours only if we made it, its checked
manifest, the parts), ``segments`` and ``video_job``/``folder_job`` (what is cut and run),
``pool``/``ray_runner``/``ray_local`` (local workers, Ray), ``engine_spec`` (how a worker opens
its engine), ``join``, ``options``.

May import: the core, ``image``, ``video``, the engines facade and ``build`` (a CPU artifact is
built once in the parent before workers start). Nothing below the commands imports ``jobs``.
"""
