"""A seeded synthetic fashion shop, Maison: contacts, a catalogue and 180 days of events.

Used by ``audience demo`` and by the benchmarks.  Everything is vectorised
numpy, produced in time-ordered chunks so that 50 million events never need to
sit in memory as Python objects.  The shape is that of a real shop: activity
per contact follows a power law, product popularity a Zipf law, and the event
mix is mostly product views with some carts, purchases, emails and forms.

Angela (contact ``angela``) carries the story: she viewed the Red Shoes twice in
the last 15 days and bought nothing since.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

DAY_MS = 86_400_000
DEFAULT_NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)

# (type, share of all events)
EVENT_MIX: tuple[tuple[str, float], ...] = (
    ("viewed_product", 0.70),
    ("added_to_cart", 0.09),
    ("purchased", 0.03),
    ("email_sent", 0.10),
    ("email_opened", 0.05),
    ("email_clicked", 0.02),
    ("form_compiled", 0.01),
)
CATEGORIES = ("clothes", "shoes", "accessories")
STORES = ("Online", "Milano Brera", "Roma Condotti", "Torino Centro", "Firenze Tornabuoni")
STORE_P = (0.72, 0.10, 0.08, 0.06, 0.04)
CAMPAIGNS = tuple(f"C-{1200 + i}" for i in range(40))
FORMS = ("addUser", "contactUs", "survey", "giftCard")
CITIES = (
    "Milan",
    "Rome",
    "Turin",
    "Florence",
    "Naples",
    "Bologna",
    "Paris",
    "Lyon",
    "Madrid",
    "Berlin",
)
CITY_P = (0.22, 0.18, 0.10, 0.08, 0.08, 0.06, 0.09, 0.05, 0.08, 0.06)
COUNTRY_OF = {
    "Milan": "IT", "Rome": "IT", "Turin": "IT", "Florence": "IT", "Naples": "IT",
    "Bologna": "IT", "Paris": "FR", "Lyon": "FR", "Madrid": "ES", "Berlin": "DE",
}  # fmt: skip
FIRST_F = ("Giulia", "Sofia", "Chiara", "Marta", "Elena", "Claire", "Lucia", "Anna", "Sara", "Ines")
FIRST_M = (
    "Marco",
    "Luca",
    "Paolo",
    "Andrea",
    "Matteo",
    "Pierre",
    "Javier",
    "Jonas",
    "Davide",
    "Leo",
)
LAST = (
    "Rossi",
    "Bianchi",
    "Romano",
    "Colombo",
    "Ricci",
    "Marino",
    "Greco",
    "Bruno",
    "Gallo",
    "Conti",
)
TAGS = ("vip", "newsletter", "outlet", "bride", "student")
_ADJ = ("Red", "Black", "White", "Blue", "Green", "Beige", "Grey", "Pink", "Brown", "Gold")
_NOUN = {
    "shoes": ("Shoes", "Sneakers", "Boots", "Loafers", "Sandals", "Pumps"),
    "clothes": ("Dress", "Shirt", "Jeans", "Coat", "Sweater", "Skirt", "Jacket"),
    "accessories": ("Bag", "Belt", "Scarf", "Hat", "Wallet", "Sunglasses"),
}
EVENT_COLUMNS = (
    "product_id", "product_name", "category", "price", "quantity",
    "order_id", "amount", "items", "store", "campaign", "url", "form_name",
)  # fmt: skip


@dataclass(frozen=True)
class Catalogue:
    ids: np.ndarray  # str objects
    names: np.ndarray
    categories: np.ndarray
    prices: np.ndarray
    popularity: np.ndarray  # Zipf weights, sums to 1

    @property
    def red_shoes(self) -> int:
        return int(np.flatnonzero(self.names == "Red Shoes")[0])


def catalogue(n_products: int = 3000, seed: int = 7) -> Catalogue:
    rng = np.random.default_rng(seed)
    cats = rng.choice(len(CATEGORIES), size=n_products, p=(0.5, 0.3, 0.2))
    names = []
    for i, c in enumerate(cats):
        cat = CATEGORIES[c]
        adj, noun = _ADJ[i % len(_ADJ)], _NOUN[cat][(i // len(_ADJ)) % len(_NOUN[cat])]
        line = i // (len(_ADJ) * len(_NOUN[cat]))
        names.append(f"{adj} {noun}" if line == 0 else f"{adj} {noun} {line + 1}")
    names_a = np.array(names, dtype=object)
    # Red Shoes exists and is among the popular products, so the story has company.
    red = next(i for i, n in enumerate(names) if n == "Red Shoes") if "Red Shoes" in names else 0
    names_a[red], cats[red] = "Red Shoes", CATEGORIES.index("shoes")
    ranks = rng.permutation(n_products) + 1
    ranks[ranks == 5], ranks[red] = ranks[red], 5
    weights = 1.0 / ranks**1.1
    prices = np.round(rng.lognormal(4.0, 0.6, n_products), 2)
    return Catalogue(
        ids=np.array([f"P{i:05d}" for i in range(n_products)], dtype=object),
        names=names_a,
        categories=np.array([CATEGORIES[c] for c in cats], dtype=object),
        prices=prices,
        popularity=weights / weights.sum(),
    )


def contact_ids(n: int) -> np.ndarray:
    return np.array([f"c{i:07d}" for i in range(n)], dtype=object)


def profiles(n_contacts: int, seed: int = 11, now: dt.datetime = DEFAULT_NOW) -> pa.Table:
    """One profile per contact; some fields missing, as in a real CRM."""
    rng = np.random.default_rng(seed)
    ids = contact_ids(n_contacts)
    female = rng.random(n_contacts) < 0.62
    first = np.where(
        female,
        np.array(FIRST_F, dtype=object)[rng.integers(0, len(FIRST_F), n_contacts)],
        np.array(FIRST_M, dtype=object)[rng.integers(0, len(FIRST_M), n_contacts)],
    )
    last = np.array(LAST, dtype=object)[rng.integers(0, len(LAST), n_contacts)]
    city = np.array(CITIES, dtype=object)[rng.choice(len(CITIES), n_contacts, p=CITY_P)]
    has_email = rng.random(n_contacts) < 0.93
    emails = [
        f"{f.lower()}.{ln.lower()}{i}@example.com" if e else None
        for i, (f, ln, e) in enumerate(zip(first, last, has_email, strict=True))
    ]
    gender = np.where(female, "female", "male").astype(object)
    gender[rng.random(n_contacts) < 0.05] = None
    now_ms = int(now.timestamp() * 1000)
    signup = now_ms - rng.integers(1, 3 * 365, n_contacts) * DAY_MS
    birth = (rng.integers(18 * 365, 75 * 365, n_contacts) * -1 + (now_ms // DAY_MS)).astype("int32")
    tag_n = rng.integers(0, 3, n_contacts)
    tags = [list(rng.choice(TAGS, size=k, replace=False)) if k else None for k in tag_n]
    preferred = np.array(STORES, dtype=object)[rng.choice(len(STORES), n_contacts, p=STORE_P)]
    return pa.table(
        {
            "contact_id": pa.array(ids, pa.string()),
            "email": pa.array(emails, pa.string()),
            "first_name": pa.array(first, pa.string()),
            "last_name": pa.array(last, pa.string()),
            "gender": pa.array(gender, pa.string()),
            "birth_date": pa.array(birth, pa.date32()),
            "city": pa.array(city, pa.string()),
            "country": pa.array([COUNTRY_OF[c] for c in city], pa.string()),
            "phone": pa.array([None] * n_contacts, pa.string()),
            "signup_ts": pa.array(signup, pa.timestamp("ms", tz="UTC")),
            "tags": pa.array(tags, pa.list_(pa.string())),
            "loyalty_points": pa.array(rng.integers(0, 5000, n_contacts), pa.int64()),
            "newsletter": pa.array(rng.random(n_contacts) < 0.55, pa.bool_()),
            "preferred_store": pa.array(preferred, pa.string()),
        }
    )


def _strings(values: np.ndarray, mask: np.ndarray) -> pa.Array:
    """A string column that is null where ``mask`` is False."""
    return pa.array(values, pa.string(), mask=~mask)


def events(
    n_events: int,
    n_contacts: int,
    *,
    days: int = 180,
    now: dt.datetime = DEFAULT_NOW,
    seed: int = 42,
    chunk: int = 1_000_000,
    cat: Catalogue | None = None,
) -> Iterator[pa.Table]:
    """``n_events`` events over ``days`` days before ``now``, in time-ordered chunks."""
    cat = cat or catalogue()
    rng = np.random.default_rng(seed)
    ids = contact_ids(n_contacts)
    activity = rng.pareto(1.3, n_contacts) + 0.05  # a few very active contacts, a long tail
    activity /= activity.sum()
    types = np.array([t for t, _ in EVENT_MIX], dtype=object)
    type_p = np.array([p for _, p in EVENT_MIX])
    type_p /= type_p.sum()
    now_ms = int(now.timestamp() * 1000)
    start_ms = now_ms - days * DAY_MS
    n_chunks = max(1, -(-n_events // chunk))
    edges = np.linspace(start_ms, now_ms, n_chunks + 1).astype(np.int64)
    done = 0
    for k in range(n_chunks):
        n = n_events // n_chunks + (1 if k < n_events % n_chunks else 0)
        ts = np.sort(rng.integers(edges[k], edges[k + 1], n, dtype=np.int64))
        who = rng.choice(n_contacts, size=n, p=activity)
        t = rng.choice(len(types), size=n, p=type_p)
        yield _chunk(rng, cat, ids, types, ts, who, t, first_id=done)
        done += n


def _chunk(
    rng: np.random.Generator,
    cat: Catalogue,
    ids: np.ndarray,
    types: np.ndarray,
    ts: np.ndarray,
    who: np.ndarray,
    t: np.ndarray,
    first_id: int,
) -> pa.Table:
    n = len(ts)
    tname = types[t]
    is_prod = (tname == "viewed_product") | (tname == "added_to_cart")
    is_cart = tname == "added_to_cart"
    is_buy = tname == "purchased"
    is_mail = (tname == "email_sent") | (tname == "email_opened") | (tname == "email_clicked")
    is_click = tname == "email_clicked"
    is_form = tname == "form_compiled"
    prod = rng.choice(len(cat.names), size=n, p=cat.popularity)
    store = np.array(STORES, dtype=object)[rng.choice(len(STORES), n, p=STORE_P)]
    in_store = is_buy & (store != "Online")
    context = np.where(
        is_mail,
        "DIGITAL_CAMPAIGN",
        np.where(in_store, "RETAIL", np.where(rng.random(n) < 0.6, "WEB", "MOBILE")),
    ).astype(object)
    context[rng.random(n) < 0.01] = None  # a few senders omit it
    campaign = np.array(CAMPAIGNS, dtype=object)[rng.integers(0, len(CAMPAIGNS), n)]
    cols: dict[str, pa.Array] = {
        "id": pa.array(
            np.char.add("e", np.arange(first_id, first_id + n).astype(str)), pa.string()
        ),
        "contact_id": pa.array(ids[who], pa.string()),
        "type": pa.array(tname, pa.string()),
        "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
        "context": pa.array(context, pa.string()),
        "product_id": _strings(cat.ids[prod], is_prod),
        "product_name": _strings(cat.names[prod], is_prod),
        "category": _strings(cat.categories[prod], is_prod | is_buy),
        "price": pa.array(cat.prices[prod], pa.float64(), mask=~is_prod),
        "quantity": pa.array(rng.integers(1, 4, n), pa.int64(), mask=~is_cart),
        "order_id": _strings(
            np.char.add("o", np.arange(first_id, first_id + n).astype(str)), is_buy
        ),
        "amount": pa.array(np.round(rng.lognormal(4.3, 0.7, n), 2), pa.float64(), mask=~is_buy),
        "items": pa.array(rng.integers(1, 6, n), pa.int64(), mask=~is_buy),
        "store": _strings(store, is_buy),
        "campaign": _strings(campaign, is_mail),
        "url": _strings(
            np.char.add("https://maison.example/p/", cat.ids[prod].astype(str)), is_click
        ),
        "form_name": _strings(
            np.array(FORMS, dtype=object)[rng.integers(0, len(FORMS), n)], is_form
        ),
    }
    return pa.table(cols)


def angela(now: dt.datetime = DEFAULT_NOW) -> tuple[pa.Table, pa.Table]:
    """The story's contact: her profile and events (Red Shoes twice in 15 days, no purchase)."""
    now_ms = int(now.timestamp() * 1000)

    def at(days_ago: float) -> int:
        return now_ms - int(days_ago * DAY_MS)

    rows = [
        ("viewed_product", at(40), "P-RED", "Red Shoes", "shoes", 129.0, None, None, None),
        ("purchased", at(38), None, None, "clothes", None, "o-angela-1", 89.9, "Milano Brera"),
        ("email_opened", at(20), None, None, None, None, None, None, None),
        ("viewed_product", at(9), "P-RED", "Red Shoes", "shoes", 129.0, None, None, None),
        ("viewed_product", at(3), "P-RED", "Red Shoes", "shoes", 129.0, None, None, None),
    ]
    ev = pa.table(
        {
            "id": [f"angela-{i}" for i in range(len(rows))],
            "contact_id": ["angela"] * len(rows),
            "type": [r[0] for r in rows],
            "ts": pa.array([r[1] for r in rows], pa.timestamp("ms", tz="UTC")),
            "context": ["WEB", "RETAIL", "DIGITAL_CAMPAIGN", "WEB", "MOBILE"],
            "product_id": [r[2] for r in rows],
            "product_name": [r[3] for r in rows],
            "category": [r[4] for r in rows],
            "price": pa.array([r[5] for r in rows], pa.float64()),
            "order_id": [r[6] for r in rows],
            "amount": pa.array([r[7] for r in rows], pa.float64()),
            "store": [r[8] for r in rows],
        }
    )
    prof = pa.table(
        {
            "contact_id": ["angela"],
            "email": ["angela@example.com"],
            "first_name": ["Angela"],
            "last_name": ["Rossi"],
            "gender": ["female"],
            "city": ["Milan"],
            "country": ["IT"],
            "newsletter": [True],
            "preferred_store": ["Milano Brera"],
        }
    )
    return ev, prof
