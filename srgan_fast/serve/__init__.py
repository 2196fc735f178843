"""The upscaling service: ``python -m srgan_fast.serve`` (Ray Serve; ``pip install 'srgan_fast[serve]'``).

- ``cli``: options, Ray and Serve start-up, clean stop on Ctrl-C / SIGTERM
- ``ray_local``: joining a cluster or starting a local Ray instance on loopback
- ``app``: the FastAPI ingress (page, ``POST /v1/upscale``, ``GET /healthz``, ``/v1/info``, OpenAPI)
- ``deployment``: the ``Upscaler`` replicas (engines, ``serve.batch``, tiling in a memory budget)
- ``validate``: checks before any work (content type, body size, image header, options)
- ``limits``: the limits and the engine recipe; ``http_errors``: the JSON errors
- ``static/``: the web page (plain HTML/CSS/JS, no network)

Nothing is imported here, so the package can be named without Ray installed. A command: it may
import every stage (``image`` for the CLI's image rules, ``jobs.engine_spec`` for engines), and
no stage imports it.
"""
