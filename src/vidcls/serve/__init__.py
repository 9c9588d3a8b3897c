"""``vidcls serve``: models behind an HTTP API, a page in the browser, and live streams.

    >>> from vidcls.serve import ServedModel, ServeConfig, ServerThread, create_app
    >>> app = create_app([ServedModel.load("tsm", "runs/demo/tsm")], ServeConfig())
    >>> with ServerThread(app) as server:   # or vidcls.serve.serve(app, port=8000)
    ...     print(server.url)

Modules, in the order a request meets them:

* :mod:`~vidcls.serve.app` -- the FastAPI routes and their ``{"error": ...}`` answers;
* :mod:`~vidcls.serve.uploads` -- the upload size limit, the one temporary file per upload,
  decoding (415 / 422);
* :mod:`~vidcls.serve.batching` -- dynamic batching of concurrent predict requests;
* :mod:`~vidcls.serve.streaming` -- ``WS /v1/stream``: frames through an online TSM;
* :mod:`~vidcls.serve.models` -- the loaded models, one inference thread each;
* :mod:`~vidcls.serve.state` -- the limits (:class:`ServeConfig`), shared state, the token;
* :mod:`~vidcls.serve.metrics` -- ``/metrics`` in the Prometheus text format;
* :mod:`~vidcls.serve.server` -- uvicorn: :func:`serve` and :class:`ServerThread`;
* ``static/`` -- the page (plain HTML, CSS and JS; nothing is fetched from elsewhere).

Needs the ``serve`` extra: ``pip install 'vidcls[serve]'`` (FastAPI, uvicorn, websockets,
python-multipart, Pillow, fastapi-offline for the offline API docs).
"""
from vidcls.serve.app import STATIC_DIR, create_app
from vidcls.serve.models import ServedModel
from vidcls.serve.server import ServerThread, check_exposure, serve
from vidcls.serve.state import ServeConfig

__all__ = ["create_app", "ServedModel", "ServeConfig", "ServerThread", "serve",
           "check_exposure", "STATIC_DIR"]
