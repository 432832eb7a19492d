#!/usr/bin/env python3
"""Trains a tiny Qwen3-VL reranker on a synthetic relevance task, to measure quantization on a
model whose rankings mean something (a randomly initialised model's rankings are chaotic: 1 %
weight noise reorders them).

The model is a Qwen3VLForConditionalGeneration built like make_golden.py's `tied-real-vocab`
(real vocabulary 151936, so the real tokenizer's ids work; tied embeddings), but larger: text
hidden 256, 4 layers, 4 heads, 2 KV heads, head_dim 64, intermediate 768; a tiny vision tower that
is never used (and never trained). Everything is f32.

Training data are template-generated query/document pairs over ten topics (cats, bread, football
results, stock markets, trains, houseplants, weather, museums, quantum computing, printing
history), plus short keyword queries. Same subtopic: label 1; same topic, other subtopic (a
document about cats in general for a query about cats' sleep): 0.5; other topic: 0. Each pair is
rendered exactly as the reranker renders a text-only request with the default instruction (see
make_rerank_golden.py: system text, `<Instruct>: …<Query>:…\n<Document>:…`, the chat template), and
the loss is binary cross-entropy on the reranker's logit h_last · (E[yes] − E[no]), E the tied
embedding table. From scratch, the graded task sits on a long plateau, so the first 600 steps use
topic-level labels (same topic: 1) as a curriculum. AdamW, lr 1e-3 (warmup 100, cosine to 10 %),
batch 16, 3000 steps; the weights of the best validation loss (checked every 100 steps) are kept.
Validation: one held-out query template per subtopic and 15 % of the documents. The 3 queries and
20 documents that sift's `q4_real_shape fidelity` scores are never generated (asserted below,
compared case- and punctuation-insensitively); the script prints the f32 scores transformers
gives them.

Speed: only the embedding rows of tokens that occur in the training data (and yes/no) get
gradients, so they are trained as a compact table and written back into the full one at the end.
With AdamW and no weight decay on embeddings this is the same update as training the whole table
(rows that never get a gradient never move), just without touching 39M values per step.

Run from the repository root (about 11 CPU minutes, one thread; seeded, deterministic):

    .venv-golden/bin/python tests/golden/train_tiny_reranker.py --out /tmp/trained/f32

The output (config.json, model.safetensors, generation_config.json, tokenizer.json,
tokenizer_config.json) is not committed: the real-vocabulary table alone is 155 MB in f32.
"""

import argparse
import itertools
import json
import math
import random
import re
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, Qwen3VLConfig, Qwen3VLForConditionalGeneration

ROOT = Path(__file__).resolve().parent
TOKENIZER_DIR = ROOT / "tokenizer"
SYSTEM = ('Judge whether the Document meets the requirements based on the Query and the Instruct '
          'provided. Note that the answer can only be "yes" or "no".')
DEFAULT_INSTRUCTION = "Given a search query, retrieve relevant candidates that answer the query."
REAL = dict(image=151655, video=151656, vision_start=151652, vision_end=151653)

# Held out: what crates/sift/examples/q4_real_shape.rs `fidelity` scores.
EVAL_QUERIES = [
    "where do cats like to sleep?",
    "how do I bake bread at home",
    "results of the weekend's football matches",
]
EVAL_DOCUMENTS = [
    "A cat sleeps on a warm windowsill.", "Stock markets fell sharply on Monday.",
    "Kittens need to eat four times a day.", "The recipe calls for two cups of flour.",
    "Lions are the only cats that live in groups.", "The train to Berlin leaves at noon.",
    "My cat knocks glasses off the table.", "Quantum computers use qubits.",
    "Cats sleep for up to sixteen hours a day.", "A guide to repotting houseplants.",
    "Why do cats purr? Scientists are not sure.", "The museum opens on Sundays.",
    "Feeding a senior cat: what changes.", "Football results from the weekend.",
    "A dog and a cat share a sofa.", "How to bake sourdough bread.", "Tigers are strong swimmers.",
    "The history of the printing press.", "Cat videos were the internet's first hit.",
    "Rain is expected all week.",
]

# --------------------------------------------------------------------------------------------
# Synthetic data. A template's {slot}s take every combination of their values (then a sample).

CAT = ["My cat", "Our cat", "The cat", "A tabby cat", "The old cat", "Her kitten", "His cat",
       "The black cat", "A lazy cat", "The ginger cat", "Our kitten", "The neighbour's cat"]
CATS = ["Cats", "Most cats", "House cats", "Adult cats", "Older cats", "Kittens", "Indoor cats"]
BIG = ["Lions", "Tigers", "Leopards", "Cheetahs", "Jaguars", "Snow leopards"]
TEAMS = ["Arsenal", "Chelsea", "Liverpool", "Everton", "Leeds", "Bayern", "Dortmund", "Ajax",
         "Celtic", "Rangers", "Porto", "Benfica", "Napoli", "Juventus", "Barcelona", "Sevilla"]
DAY = ["on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday", "on Saturday",
       "on Sunday", "today", "yesterday", "this morning"]
CITY = ["Berlin", "Paris", "Vienna", "Madrid", "Rome", "Prague", "Lisbon", "London", "Munich",
        "Zurich", "Amsterdam", "Milan"]
PLANT = ["fern", "cactus", "orchid", "monstera", "succulent", "peace lily", "snake plant",
         "spider plant", "rubber plant", "fiddle leaf fig", "pothos", "aloe vera"]
NUM = ["two", "three", "four", "five", "six", "seven", "eight", "ten", "twelve", "twenty"]
COMPANY = ["Apple", "Siemens", "Toyota", "Shell", "Nestle", "Samsung", "Tesla", "Unilever",
           "IBM", "Google", "Intel", "Volkswagen"]

# (topic, subtopic) -> (document templates, query templates)
DATA = {
    ("cats", "sleep"): ([
        "{cat} {sleeps} {place}.",
        "{cats} sleep {amount} a day.",
        "A cat's favourite place to sleep is {place}.",
        "{cat} spends most of the day asleep {place}.",
        "{cats} nap in short bursts and sleep {amount} a day.",
        "Why {cats_lc} sleep so much during the day.",
        "{cat} always falls asleep {place} after lunch.",
    ], [
        "where does my cat sleep", "how long do cats sleep each day", "why does my cat sleep all day?",
        "best place for a cat to nap", "cat sleeping habits", "do cats sleep at night?",
        "where do kittens nap", "how many hours a day does a cat sleep", "why is my cat always asleep",
        "where do cats prefer to sleep",
    ]),
    ("cats", "food"): ([
        "{cat} eats {food} {when}.",
        "{cats} should be fed {num} times a day.",
        "Feeding {cats_lc}: {food} or {food2}?",
        "Senior cats need {food} that is easy to digest.",
        "{cat} refuses to eat {food}.",
        "How much {food} should {cats_lc} eat?",
    ], [
        "what should I feed my cat", "how often do kittens eat", "best food for an old cat",
        "cat diet advice", "is wet food good for cats", "how much should a kitten eat",
        "what do senior cats eat",
    ]),
    ("cats", "behaviour"): ([
        "{cat} {action}.",
        "Why does a cat {action_base}?",
        "{cats} {action_plural} when they are bored.",
        "Vets explain why cats {action_base}.",
        "The dog and the cat {together}.",
    ], [
        "why does my cat knock things over", "why do cats purr", "strange cat behaviour",
        "how to stop my cat scratching furniture", "do cats and dogs get along",
        "why does my cat meow at night", "understanding cat behaviour",
    ]),
    ("cats", "big"): ([
        "{big} {bigfact}.",
        "In the wild, {big_lc} {bigfact}.",
        "A documentary about {big_lc} and how they hunt.",
    ], [
        "facts about lions and tigers", "where do tigers live", "wild cats of africa",
        "how do big cats hunt", "are leopards endangered", "big cat species",
    ]),
    ("cats", "culture"): ([
        "Cats were {culture}.",
        "{cat_video} {online}.",
        "The history of cats as {pets}.",
    ], [
        "cats in history", "why are cat videos so popular", "famous cats on the internet",
        "how cats became pets",
    ]),
    ("food", "bread"): ([
        "Knead the dough for {num} minutes.",
        "Let the {dough} rise {rise}.",
        "Bake the loaf at {temp} degrees for {mins} minutes.",
        "{easy} recipe for {bread} bread.",
        "Mix {num} cups of flour with water, salt and yeast.",
        "My homemade {bread} bread came out {result}.",
        "A sourdough starter needs flour and water every day.",
        "Tips for baking {bread} bread in a home oven.",
        "Use strong flour and fresh yeast for a {bread} loaf.",
        "Why your {bread} bread did not rise.",
    ], [
        "easy bread recipe", "how to make bread at home", "how do I make sourdough",
        "why didn't my bread rise", "baking a loaf of bread", "homemade bread tips",
        "how do you bake a loaf", "what flour is best for bread", "bread baking for beginners",
    ]),
    ("food", "cooking"): ([
        "Add the {veg} to the soup and simmer for {mins} minutes.",
        "The cake recipe needs {num} eggs and a cup of sugar.",
        "Boil the pasta for {num} minutes in salted water.",
        "{easy} recipe for {dish}.",
        "Fry the {veg} in olive oil until soft.",
    ], [
        "how to cook pasta", "simple soup recipe", "chocolate cake recipe", "quick dinner ideas",
        "how long to boil pasta",
    ]),
    ("football", "results"): ([
        "{team} beat {team2} {score} {day}.",
        "{team} and {team2} drew {draw} {day}.",
        "Weekend football round-up: {team} win, {team2} lose.",
        "Saturday's football scores: {team} {n1}, {team2} {n2}.",
        "All the results from {weekday}'s league matches.",
        "{team} lost {score} to {team2} at the weekend.",
        "Football: {team} {score} {team2}, full time.",
        "Late goal gives {team} a {score} win over {team2}.",
    ], [
        "football scores from saturday", "who won the match last weekend", "latest football results",
        "weekend league scores", "sunday football match results", "did {team} win at the weekend",
        "{team} result", "scores of the football games this weekend",
    ]),
    ("football", "news"): ([
        "{team} signed a new striker {day}.",
        "The football season starts in August.",
        "{team}'s manager was sacked {day}.",
        "Tickets for the cup final between {team} and {team2} are sold out.",
        "{team} are building a new stadium.",
    ], [
        "football transfer news", "when does the football season start", "new football stadium",
        "{team} manager news",
    ]),
    ("markets", "markets"): ([
        "Shares in {company} {moved} {num} percent {day}.",
        "The stock market {rallied} after {news}.",
        "Investors sold {sector} stocks {day}.",
        "The {index} index closed {higher} {day}.",
        "{company} shares hit a record high {day}.",
        "Markets {rallied} as {news}.",
    ], [
        "stock market news today", "why did shares fall", "how are the markets doing",
        "dow jones index today", "share prices this week", "is the stock market going up",
    ]),
    ("trains", "trains"): ([
        "The {train} to {city} departs at {time}.",
        "Trains to {city} are delayed by {num} minutes.",
        "Book a rail ticket from {city} to {city2}.",
        "The high-speed line connects {city} and {city2}.",
        "The {train} from {city} arrives at {time}.",
        "Travelling by train from {city} to {city2} takes {num} hours.",
    ], [
        "train times to paris", "when does the next train leave", "rail travel across europe",
        "how to book train tickets", "night train to vienna", "is my train delayed",
    ]),
    ("plants", "plants"): ([
        "Water your {plant} {often}.",
        "A {plant} likes {light}.",
        "Repot the {plant} in spring into a larger pot.",
        "Yellow leaves on a {plant} mean {problem}.",
        "Repotting a {plant}: choose fresh soil.",
        "How to keep a {plant} alive indoors.",
    ], [
        "how often should I water houseplants", "indoor plant care tips", "when to repot a plant",
        "why are my plant's leaves yellow", "best houseplants for low light", "caring for a {plant}",
    ]),
    ("weather", "weather"): ([
        "{precip} is expected {when_w} in {city}.",
        "The forecast for {city} says {forecast} {when_w}.",
        "Temperatures will reach {num} degrees {when_w}.",
        "A storm warning has been issued for {city}.",
        "Expect {forecast} {when_w}.",
    ], [
        "weather forecast for tomorrow", "will it rain this weekend", "is it going to be sunny",
        "weekly weather outlook", "weather in {city}", "will it snow tomorrow",
    ]),
    ("museums", "museums"): ([
        "The {museum} museum opens at {time} on {weekday}s.",
        "A new exhibition of {exhibit} opens at the {city} museum.",
        "Entry to the {museum} museum is free on {weekday}s.",
        "The {museum} museum in {city} is closed {day}.",
        "The {city} museum shows {exhibit} this month.",
    ], [
        "museum opening hours", "exhibitions in the city this month", "is the museum free",
        "art museum in {city}", "when is the museum open",
    ]),
    ("quantum", "quantum"): ([
        "A quantum computer with {bignum} qubits was built by {company}.",
        "Quantum error correction protects qubits from noise.",
        "{q} {qfact}.",
        "Researchers at {company} ran a quantum algorithm on {bignum} qubits.",
    ], [
        "how do quantum computers work", "what is a qubit", "latest quantum computing research",
        "quantum computing explained", "quantum algorithms",
    ]),
    ("printing", "printing"): ([
        "Gutenberg built a printing press around 1440.",
        "The printing press spread across Europe in the {century} century.",
        "Early printed books were made with {type_}.",
        "Woodblock printing was used in {place_p} long before Gutenberg.",
        "{printed} were printed in {city} in the {century} century.",
        "How the printing press changed {change}.",
    ], [
        "who invented the printing press", "history of printing", "how were books made before computers",
        "movable type history", "gutenberg and the printing revolution",
    ]),
}

# Short keyword queries per subtopic (training only): many phrasings that share words with the
# documents, so that the model learns to match words rather than memorise the query templates.
KEYWORDS = {
    ("cats", "sleep"): ["cat sleep", "cats sleeping", "cat naps", "sleepy kitten", "how much cats sleep",
                        "cat asleep all day", "where my kitten sleeps", "cat sleeping spots"],
    ("cats", "food"): ["cat food", "feeding a kitten", "senior cat diet", "wet or dry cat food",
                       "how often to feed a cat", "what cats eat"],
    ("cats", "behaviour"): ["cat purring", "cat scratching", "cat knocking things over", "cats and dogs",
                            "cat meowing", "kitten playing"],
    ("cats", "big"): ["lions", "tigers", "leopards", "cheetahs", "big cats in the wild", "lion prides"],
    ("cats", "culture"): ["cat videos", "cats in ancient egypt", "history of pet cats", "internet cats"],
    ("food", "bread"): ["bread", "sourdough", "baking bread", "bread dough", "bread flour", "yeast",
                        "homemade loaf", "kneading dough"],
    ("food", "cooking"): ["pasta", "soup", "cake", "dinner recipe", "cooking vegetables"],
    ("football", "results"): ["football results", "football scores", "match results", "weekend football",
                              "league scores", "who won", "{team} score", "{team} match"],
    ("football", "news"): ["football transfers", "football manager", "{team} stadium", "cup final tickets"],
    ("markets", "markets"): ["stock market", "shares", "share prices", "stock prices", "investors", "{index}"],
    ("trains", "trains"): ["trains", "train times", "rail tickets", "train to {city}", "train delays",
                           "railway travel"],
    ("plants", "plants"): ["houseplants", "plant care", "watering plants", "repotting", "{plant} care",
                           "indoor plants"],
    ("weather", "weather"): ["weather", "rain", "forecast", "weather this week", "snow", "weather in {city}"],
    ("museums", "museums"): ["museum", "museum hours", "exhibition", "museum in {city}", "art gallery"],
    ("quantum", "quantum"): ["quantum computing", "qubits", "quantum computer", "quantum research"],
    ("printing", "printing"): ["printing press", "gutenberg", "history of printing", "movable type",
                               "early printed books"],
}
KEYWORD_QUERIES = ["{}", "{}?", "about {}", "information on {}", "questions about {}", "tell me about {}",
                   "{} facts", "{} explained"]

SLOTS = dict(
    cat=CAT, cats=CATS, cats_lc=[c.lower() for c in CATS[1:]] + ["cats"],
    sleeps=["sleeps", "naps", "dozes", "curls up and sleeps", "likes to nap", "is sleeping"],
    place=["on the sofa", "in a cardboard box", "on a sunny windowsill", "under the bed",
           "on the warm radiator", "in the laundry basket", "on my pillow", "in a patch of sunlight",
           "on top of the fridge", "on the windowsill", "in a basket by the fire"],
    amount=["about twelve hours", "for fourteen hours", "up to eighteen hours", "fifteen hours",
            "for many hours", "thirteen hours"],
    food=["wet food", "dry food", "fish", "chicken", "kitten food", "tuna", "special senior food"],
    food2=["dry food", "raw meat", "tinned food", "biscuits"],
    when=["twice a day", "every morning", "at night", "four times a day", "in the evening"],
    num=NUM,
    action=["knocks a cup off the shelf", "scratches the sofa", "chases a laser pointer",
            "purrs when it is stroked", "hides under the bed when guests arrive",
            "meows at the door every morning", "brings mice into the house",
            "plays with a ball of yarn", "knocks pens off the desk", "kneads the blanket"],
    action_base=["purr", "knead blankets", "knock things off tables", "scratch furniture",
                 "bring home mice", "chase their tails", "hate water"],
    action_plural=["scratch the furniture", "knock things off tables", "chase their tails",
                   "meow loudly", "climb the curtains"],
    together=["sleep on the same sofa", "play in the garden", "share a bed", "eat side by side"],
    big=BIG, big_lc=[b.lower() for b in BIG],
    bigfact=["hunt at night", "live in the savanna", "can swim across rivers",
             "are the largest cats", "are endangered", "live in groups called prides",
             "hunt antelope and zebra", "are fast runners"],
    culture=["worshipped in ancient Egypt", "kept on ships to catch rats",
             "popular pets in Victorian homes", "sacred animals in many cultures"],
    cat_video=["Cat videos", "Funny cat clips", "Videos of kittens"],
    online=["are hugely popular online", "get millions of views", "spread quickly on the internet"],
    pets=["pets", "companions", "house animals"],
    dough=["dough", "bread dough", "sourdough"],
    rise=["for two hours", "overnight", "in a warm place", "until it doubles in size"],
    temp=["200", "220", "230", "180"], mins=["twenty", "thirty", "forty", "forty-five"],
    easy=["A simple", "An easy", "A quick", "My favourite"],
    bread=["sourdough", "white", "rye", "whole wheat", "banana", "soda", "spelt"],
    result=["dense", "perfect", "too flat", "light and airy"],
    veg=["tomatoes", "carrots", "onions", "potatoes", "peppers"],
    dish=["chocolate cake", "tomato soup", "pasta with pesto", "lemon tart", "vegetable curry"],
    team=TEAMS, team2=TEAMS,
    score=["2-1", "3-0", "1-0", "4-2", "2-0", "3-1"], draw=["1-1", "0-0", "2-2"],
    n1=["0", "1", "2", "3"], n2=["0", "1", "2", "4"],
    weekday=["Saturday", "Sunday", "Monday", "Friday", "Wednesday"], day=DAY,
    company=COMPANY,
    moved=["rose", "fell", "jumped", "dropped", "slipped"],
    rallied=["rallied", "slumped", "fell", "recovered", "crashed"],
    news=["strong jobs figures", "the interest rate decision", "weak earnings", "inflation data"],
    sector=["tech", "bank", "energy", "car"],
    index=["FTSE", "Dow Jones", "DAX", "Nikkei", "Nasdaq"], higher=["higher", "lower", "flat"],
    train=["night train", "express", "regional train", "first train", "last train"],
    city=CITY, city2=CITY,
    time=["noon", "nine o'clock", "half past six", "midnight", "ten in the morning", "8:15"],
    plant=PLANT, often=["once a week", "every few days", "sparingly in winter", "when the soil is dry"],
    light=["bright indirect light", "shade", "a sunny window", "humid air"],
    problem=["too much water", "too little light", "root rot", "the pot is too small"],
    precip=["Rain", "Snow", "Sunshine", "Heavy rain", "Fog", "Thunder"],
    forecast=["heavy rain", "light snow", "clear skies", "strong winds", "showers"],
    when_w=["tomorrow", "on Friday", "this weekend", "next week", "tonight"],
    museum=["art", "history", "science", "natural history", "modern art"],
    exhibit=["paintings", "dinosaur fossils", "ancient coins", "Roman statues", "photographs"],
    bignum=["fifty", "a hundred", "a thousand", "twelve", "seventy"],
    q=["Qubits", "Quantum computers", "Quantum algorithms", "Quantum processors"],
    qfact=["can be in a superposition of states", "must be kept very cold",
           "are entangled with each other", "could break some encryption", "are very sensitive to noise"],
    century=["fifteenth", "sixteenth", "seventeenth"],
    type_=["movable type", "metal type", "wooden blocks"], place_p=["China", "Korea", "Japan"],
    printed=["Bibles", "Newspapers", "Pamphlets", "Maps"],
    change=["the spread of news", "science", "the Reformation", "education in Europe"],
)


def norm_text(s):
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


HELD_OUT = {norm_text(s) for s in EVAL_QUERIES + EVAL_DOCUMENTS}


def expand(template, rng, cap, capitalise=True):
    """Up to `cap` distinct fillings of the template's slots (team2 != team, city2 != city)."""
    names = re.findall(r"{(\w+)}", template)
    combos = [dict(zip(names, values)) for values in itertools.product(*(SLOTS[n] for n in names))]
    combos = [c for c in combos if c.get("team") != c.get("team2") or "team" not in c]
    combos = [c for c in combos if c.get("city") != c.get("city2") or "city" not in c]
    rng.shuffle(combos)
    out = []
    for c in combos[:cap]:
        text = template.format(**c)
        out.append(text[0].upper() + text[1:] if capitalise else text)
    return out


def build_data(rng):
    """Per subtopic: train and validation documents and queries (the last query template of each
    subtopic, and 15 % of its documents, are validation only; keyword queries are training only)."""
    data = {}
    for key, (doc_templates, query_templates) in DATA.items():
        docs = sorted({d for t in doc_templates for d in expand(t, rng, 40)})
        queries = [sorted(set(expand(t, rng, 4))) for t in query_templates]
        queries = [[q[0].lower() + q[1:] for q in qs] for qs in queries]
        keyword_queries = sorted({form.format(k) for kw in KEYWORDS[key]
                                  for k in expand(kw, rng, 3, capitalise=False) for form in KEYWORD_QUERIES})
        rng.shuffle(docs)
        n_val = max(1, len(docs) * 15 // 100)
        data[key] = dict(train_docs=docs[n_val:], val_docs=docs[:n_val],
                         train_queries=[q for qs in queries[:-1] for q in qs], val_queries=queries[-1],
                         keyword_queries=keyword_queries)
        for s in docs + [q for qs in queries for q in qs] + keyword_queries:
            assert norm_text(s) not in HELD_OUT, f"held-out text generated: {s!r}"
    return data


def label(query_key, doc_key):
    if query_key == doc_key:
        return 1.0
    return 0.5 if query_key[0] == doc_key[0] else 0.0


def sample_pairs(data, split, n, rng, coarse=False):
    keys = list(data)
    by_topic = {}
    for k in keys:
        by_topic.setdefault(k[0], []).append(k)
    pairs = []
    for _ in range(n):
        qk = rng.choice(keys)
        use_keywords = split == "train" and rng.random() < 0.4
        query = rng.choice(data[qk]["keyword_queries" if use_keywords else f"{split}_queries"])
        r = rng.random()
        siblings = [k for k in by_topic[qk[0]] if k != qk]
        if r < 0.45:
            dk = qk
        elif r < 0.6 and siblings:
            dk = rng.choice(siblings)
        else:
            dk = rng.choice([k for k in keys if k[0] != qk[0]])
        target = float(qk[0] == dk[0]) if coarse else label(qk, dk)
        pairs.append((query, rng.choice(data[dk][f"{split}_docs"]), target))
    return pairs


# --------------------------------------------------------------------------------------------
# The model and the reranker prompt.

def build_model():
    text = dict(vocab_size=151936, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2, head_dim=64, rms_norm_eps=1e-6,
                rope_theta=5e6, max_position_embeddings=4096, tie_word_embeddings=True,
                hidden_act="silu",
                rope_scaling={"rope_type": "default", "mrope_section": [12, 10, 10],
                              "mrope_interleaved": True})
    vision = dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=2,
                  num_position_embeddings=2304, deepstack_visual_indexes=[0, 1, 2], patch_size=16,
                  temporal_patch_size=2, spatial_merge_size=2, in_channels=3, out_hidden_size=256,
                  hidden_act="gelu_pytorch_tanh")
    config = Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True,
                           image_token_id=REAL["image"], video_token_id=REAL["video"],
                           vision_start_token_id=REAL["vision_start"],
                           vision_end_token_id=REAL["vision_end"])
    model = Qwen3VLForConditionalGeneration(config)
    model.tie_weights()
    return model


def render(query, document, instruction=DEFAULT_INSTRUCTION):
    """A text-only request as the reranker renders it (make_rerank_golden.py `messages`, `render`)."""
    user = f"<Instruct>: {instruction}<Query>:{query}\n<Document>:{document}"
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


class Encoder:
    def __init__(self, tokenizer):
        self.tokenizer, self.cache = tokenizer, {}

    def __call__(self, query, document):
        key = (query, document)
        if key not in self.cache:
            self.cache[key] = self.tokenizer(render(query, document), add_special_tokens=False)["input_ids"]
        return self.cache[key]


def batch_logits(model, rows, compact, seqs, yes_c, no_c):
    """Logits of a batch. The tokens every sequence starts with (the system text and instruction)
    run once, and their keys and values are shared by the rest, which is right-padded: causal
    attention never lets a real token see a pad, so no mask is needed, and positions are 0..len-1
    as for a single sequence. `rows` are the trainable embedding rows, `compact` maps token ids to
    them."""
    shared = min(len(s) for s in seqs) - 1
    for i in range(shared):
        if any(s[i] != seqs[0][i] for s in seqs):
            shared = i
            break
    lengths = torch.tensor([len(s) - shared for s in seqs])
    width = int(lengths.max())
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s) - shared] = compact[torch.tensor(s[shared:])]
    assert (ids >= 0).all() and (compact[torch.tensor(seqs[0][:shared])] >= 0).all(), "a token without a row"
    lm = model.model.language_model
    prefix = compact[torch.tensor(seqs[0][:shared])]
    cache = lm(inputs_embeds=rows[prefix][None], position_ids=torch.arange(shared).expand(3, 1, shared),
               use_cache=True).past_key_values
    cache.batch_repeat_interleave(len(seqs))
    pos = torch.arange(shared, shared + width)
    h = lm(inputs_embeds=rows[ids], position_ids=pos.expand(3, len(seqs), width), past_key_values=cache,
           cache_position=pos, use_cache=True).last_hidden_state
    h_last = h[torch.arange(len(seqs)), lengths - 1]
    return h_last @ (rows[yes_c] - rows[no_c])


@torch.no_grad()
def reference_score(model, tokenizer, query, document, w):
    """As make_rerank_golden.py scores: the full model, one unpadded sequence."""
    ids = tokenizer(render(query, document), add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids])
    h = model.model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state[0, -1]
    return torch.sigmoid(h @ w).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--coarse-steps", type=int, default=600,
                        help="first steps: label 1 for any document of the query's topic (a curriculum: "
                             "from scratch, the graded task sits on a long plateau)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    rng = random.Random(args.seed)

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    vocab = tokenizer.get_vocab()
    yes, no = vocab["yes"], vocab["no"]
    data = build_data(rng)
    encode = Encoder(tokenizer)
    n_docs = sum(len(v["train_docs"]) for v in data.values())
    n_val_docs = sum(len(v["val_docs"]) for v in data.values())
    print(f"{len(data)} subtopics, {n_docs} train / {n_val_docs} validation documents")

    model = build_model()
    model.train()
    table = model.model.language_model.embed_tokens.weight
    assert model.lm_head.weight.data_ptr() == table.data_ptr(), "embeddings are not tied"
    table.requires_grad_(False)

    # Every token the training data can produce (tokenized in the prompt, as the model reads it),
    # plus yes/no.
    used = {yes, no}
    for v in data.values():
        for q in v["train_queries"] + v["keyword_queries"]:
            used.update(tokenizer(render(q, "cats"), add_special_tokens=False)["input_ids"])
        for d in v["train_docs"]:
            used.update(tokenizer(render("cats", d), add_special_tokens=False)["input_ids"])
    val_pairs = sample_pairs(data, "val", 480, random.Random(args.seed + 1))
    # Tokens of a validation text that training never sees keep their initial rows (as they would
    # if the whole table were trained); the compact map still has to reach them.
    all_used = set(used)
    for q, d, _ in val_pairs:
        all_used.update(encode(q, d))
    used_ids = torch.tensor(sorted(all_used))
    compact = torch.full((table.shape[0],), -1, dtype=torch.long)
    compact[used_ids] = torch.arange(len(used_ids))
    rows = torch.nn.Parameter(table[used_ids].clone())
    trainable_rows = torch.zeros(len(used_ids), 1)
    trainable_rows[compact[torch.tensor(sorted(used))]] = 1.0
    rows.register_hook(lambda g: g * trainable_rows)  # validation-only tokens stay as initialised
    yes_c, no_c = int(compact[yes]), int(compact[no])
    print(f"{len(used)} distinct tokens trained ({len(used_ids)} with validation)")

    decay = [p for n, p in model.model.language_model.named_parameters()
             if p.requires_grad and p.ndim == 2 and "embed" not in n]
    no_decay = [p for n, p in model.model.language_model.named_parameters()
                if p.requires_grad and p.ndim < 2]
    optimiser = torch.optim.AdamW([dict(params=decay, weight_decay=0.01),
                                   dict(params=no_decay + [rows], weight_decay=0.0)], lr=args.lr)
    warmup = 100

    def lr_at(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_at)

    def evaluate(pairs):
        model.eval()
        logits = []
        with torch.no_grad():
            for i in range(0, len(pairs), 32):
                chunk = pairs[i:i + 32]
                logits.append(batch_logits(model, rows, compact, [encode(q, d) for q, d, _ in chunk],
                                           yes_c, no_c))
        model.train()
        logits = torch.cat(logits)
        labels = torch.tensor([l for _, _, l in pairs])
        hard = labels != 0.5
        acc = ((logits[hard] > 0).float() == labels[hard]).float().mean().item()
        partial = torch.sigmoid(logits[~hard]).mean().item() if (~hard).any() else float("nan")
        loss = F.binary_cross_entropy_with_logits(logits, labels).item()
        return acc, partial, loss

    train_rng = random.Random(args.seed + 2)
    started = time.process_time()
    wall = time.time()
    recent = []
    best = (float("inf"), 0, None)
    for step in range(args.steps):
        pairs = sample_pairs(data, "train", args.batch, train_rng, coarse=step < args.coarse_steps)
        logits = batch_logits(model, rows, compact, [encode(q, d) for q, d, _ in pairs], yes_c, no_c)
        labels = torch.tensor([l for _, _, l in pairs])
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decay + no_decay + [rows], 1.0)
        optimiser.step()
        scheduler.step()
        recent.append(loss.item())
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            acc, partial, vloss = evaluate(val_pairs)
            print(f"step {step + 1:5}  train loss {sum(recent) / len(recent):.4f}  val loss {vloss:.4f}  "
                  f"val acc {acc:.3f}  val mean score of 0.5 pairs {partial:.3f}  "
                  f"cpu {time.process_time() - started:.0f} s  wall {time.time() - wall:.0f} s",
                  flush=True)
            recent = []
            if vloss < best[0]:  # early stopping: keep the weights of the best validation loss
                best = (vloss, step + 1, {k: v.detach().clone() for k, v in
                                          [*model.model.language_model.named_parameters(), ("rows", rows)]})

    print(f"keeping the weights of step {best[1]} (validation loss {best[0]:.4f})")
    with torch.no_grad():
        for k, v in [*model.model.language_model.named_parameters(), ("rows", rows)]:
            v.copy_(best[2][k])
    train_eval = sample_pairs(data, "train", 480, random.Random(args.seed + 3))
    tacc, tpartial, tloss = evaluate(train_eval)
    vacc, vpartial, vloss = evaluate(val_pairs)
    print(f"final: train acc {tacc:.3f} (loss {tloss:.4f}, 0.5 pairs {tpartial:.3f}); "
          f"validation acc {vacc:.3f} (loss {vloss:.4f}, 0.5 pairs {vpartial:.3f}); "
          f"training {time.process_time() - started:.0f} CPU s, {time.time() - wall:.0f} wall s")

    # Write the trained rows back into the (tied) table and save.
    model.eval()
    with torch.no_grad():
        table[used_ids] = rows.detach()
    assert model.lm_head.weight.data_ptr() == table.data_ptr()
    table.requires_grad_(True)
    w = table[yes] - table[no]
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(TOKENIZER_DIR / name, args.out / name)

    # The compact, prefix-sharing, right-padded training forward is the reference forward.
    check = [(q, d) for q, d, _ in val_pairs[:6]] + [(val_pairs[0][0], "cats")]
    with torch.no_grad():
        fast = torch.sigmoid(batch_logits(model, rows, compact, [encode(q, d) for q, d in check],
                                          yes_c, no_c)).tolist()
    slow = [reference_score(model, tokenizer, q, d, w.detach()) for q, d in check]
    print(f"training forward vs reference forward: max |Δ score| {max(abs(a - b) for a, b in zip(fast, slow)):.2e}")
    assert max(abs(a - b) for a, b in zip(fast, slow)) < 1e-5, (fast, slow)

    # Reload what was saved, and score the held-out evaluation set with it.
    saved = Qwen3VLForConditionalGeneration.from_pretrained(args.out, dtype=torch.float32).eval()
    sw = (saved.lm_head.weight[yes] - saved.lm_head.weight[no]).detach()
    scores = {q: [reference_score(saved, tokenizer, q, d, sw) for d in EVAL_DOCUMENTS]
              for q in EVAL_QUERIES}
    for q, s in scores.items():
        order = sorted(range(len(s)), key=lambda i: -s[i])
        print(f"\n{q!r}")
        for i in order:
            print(f"  {s[i]:.6f}  {EVAL_DOCUMENTS[i]}")
    print("\nscores (queries × documents, documents in q4_real_shape.rs order):")
    print(json.dumps({q: [round(x, 7) for x in s] for q, s in scores.items()}))


if __name__ == "__main__":
    main()
