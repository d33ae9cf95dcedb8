import os

# Tests never need a real secret, and always start from the embedded defaults unless the
# environment (e.g. .ci/run's PostgreSQL pass) says otherwise.
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-use-0123456789abcdef")
os.environ.setdefault("DEBUG", "false")
