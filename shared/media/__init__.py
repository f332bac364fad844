"""Media broker: TTS, image and avatar jobs on the compute queue, content-hash cached, stored in a BlobStore.

Importing the package registers the media task kinds with the compute drain (cheap: no SDK imports).
"""

from shared.media.executor import register

register()
