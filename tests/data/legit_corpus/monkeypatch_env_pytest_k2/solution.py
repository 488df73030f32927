import os
def mode():
    return os.environ.get("APP_MODE", "dev")
def workers():
    return int(os.environ.get("APP_WORKERS", "1"))
