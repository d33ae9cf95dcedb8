"""Settings for the benchmarks: the production settings (config.settings, from the environment that
bench.common.server_env sets) plus the bare baseline view's URL conf. Production code carries no
benchmark routes; only this module points ROOT_URLCONF at bench.urls."""

import warnings

from config.settings import *  # noqa: F403

# No collectstatic for a benchmark: whitenoise's warning about the missing STATIC_ROOT is noise.
warnings.filterwarnings("ignore", message="No directory at")

ROOT_URLCONF = "bench.urls"

# The admin rows render pages in-process without collectstatic: plain static storage (what the
# manifest storage changes is the URL of each static file, not the work of a request).
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
