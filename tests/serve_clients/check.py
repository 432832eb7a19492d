"""Real clients against `sift serve`: each one's scores must equal `sift rerank`'s.

Usage: check.py BASE_URL API_KEY SIFT_BINARY MODEL_DIR
"""

import json
import subprocess
import sys

import cohere
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

base_url, api_key, sift, model = sys.argv[1:5]
query = "What is the capital of the United States?"
documents = [
    "Carson City is the capital city of the American state of Nevada.",
    "Washington, D.C. is the capital of the United States.",
    "Capital punishment has existed in the United States since before it was a country.",
]

request = {"query": {"text": query}, "documents": [{"text": d} for d in documents]}
printed = subprocess.run(
    [sift, "rerank", "--model", model, "--device", "cpu", "-"],
    input=json.dumps(request),
    capture_output=True,
    text=True,
    check=True,
).stdout
expected = {r["index"]: r["score"] for r in json.loads(printed)["results"]}
best = max(expected, key=expected.get)


def check(client, scores):
    """scores: {index: score} as the client returned them."""
    assert scores, f"{client}: no results"
    for index, score in scores.items():
        # The JSON carries f32 scores; a client's float must be the same number.
        assert abs(score - expected[index]) < 1e-6, f"{client}: {scores} != {expected}"
    print(f"{client}: {len(scores)} scores equal sift rerank's")


v1 = cohere.Client(api_key=api_key, base_url=base_url)
answer = v1.rerank(model="rerank-v3.5", query=query, documents=documents, top_n=3)
check("cohere.Client.rerank (v1)", {r.index: r.relevance_score for r in answer.results})
assert answer.results[0].index == best

v2 = cohere.ClientV2(api_key=api_key, base_url=base_url)
answer = v2.rerank(model="rerank-v3.5", query=query, documents=documents, top_n=2)
check("cohere.ClientV2.rerank (v2)", {r.index: r.relevance_score for r in answer.results})
assert [r.index for r in answer.results][0] == best and len(answer.results) == 2

tei = TextEmbeddingInference(
    base_url=base_url, top_n=3, auth_token=f"Bearer {api_key}", model_name="sift"
)
nodes = [NodeWithScore(node=TextNode(text=d, id_=str(i))) for i, d in enumerate(documents)]
ranked = tei.postprocess_nodes(nodes, query_bundle=QueryBundle(query_str=query))
check("llama_index TextEmbeddingInference", {int(n.node.node_id): n.score for n in ranked})
assert ranked[0].node.node_id == str(best)
print("the Cohere SDK (v1, v2) and LlamaIndex's TEI reranker score as sift rerank does")
