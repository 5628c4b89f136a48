"""fusion_magic: compare, fuse and check AI models from a notebook."""
