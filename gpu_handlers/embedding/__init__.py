"""RunPod serverless worker for bge-m3 embeddings and bge reranking (see engine.py, handler.py)."""
