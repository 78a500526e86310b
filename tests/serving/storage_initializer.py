"""Run as KServe v0.14.1's storage initializer runs: `storage_initializer.py SRC_URI DEST_DIR`.

Its entrypoint calls `Storage.download(src_uri, dest_path)` with its two
arguments (kserve/kserve v0.14.1,
python/storage-initializer/scripts/initializer-entrypoint); the credentials
and endpoint come from the environment the webhook gave it, nothing else.
"""

import sys

from kserve.storage import Storage

if __name__ == "__main__":
    source, destination = sys.argv[1:]
    print(Storage.download(source, destination))
