"""Generated claim texts that look like a fact-checking desk's ledger.

Claims are built from templates whose slots are drawn Zipf-wise from word pools, so a
few terms are very common ("said", "forces", "russian": tens of percent of claims),
place names and weapons are medium, and synthetic surnames and village names are rare
(a handful of claims each) — the spread that makes full-text search hard.
Everything is seeded: the same seed gives the same ledger.
"""

import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import accumulate

ACTORS = [
    "Russian forces", "Ukrainian officials", "the Russian Defence Ministry",
    "the General Staff of Ukraine", "Belarusian authorities", "the Kremlin",
    "local residents", "the United Nations", "the Institute for the Study of War",
    "NATO officials", "the regional governor", "the Belarus Security Council",
    "independent monitors", "the OHCHR", "humanitarian groups", "the city mayor",
    "border guards", "Western intelligence officials", "Russian state media",
    "a government spokesperson", "the Ukrainian Air Force", "Rochan Consulting",
    "the Belarusian Defence Ministry", "the International Atomic Energy Agency",
    "the Red Cross", "satellite imagery analysts", "the Pentagon", "British intelligence",
    "the European Commission", "Amnesty International", "Human Rights Watch",
    "the Russian Foreign Ministry", "the Ukrainian Foreign Ministry", "President Lukashenko",
    "President Zelensky", "the Kremlin spokesman", "military bloggers", "the prosecutor general",
    "the energy ministry", "railway workers", "opposition activists", "the World Food Programme",
]
PEOPLE = ["civilians", "soldiers", "children", "residents", "refugees", "journalists",
          "medics", "volunteers", "prisoners of war", "workers", "pensioners", "teachers"]
HARMED = ["killed", "wounded", "evacuated", "detained", "displaced", "injured", "captured",
          "rescued", "deported", "mobilised"]
UNITS = ["troops", "tanks", "soldiers", "armoured vehicles", "artillery systems",
         "fighter jets", "air defence systems", "military trucks", "helicopters", "drones",
         "paratroopers", "reservists", "rocket launchers", "engineers"]
MOVED = ["deployed", "stationed", "moved", "sent", "redeployed", "massed", "transferred"]
WEAPONS = ["missiles", "drones", "rockets", "artillery shells", "glide bombs",
           "cruise missiles", "ballistic missiles", "cluster munitions", "mortar rounds"]
HIT = ["struck", "shelled", "hit", "attacked", "targeted", "bombarded"]
GOODS = ["tonnes of grain", "tonnes of fuel", "trainloads of equipment",
         "shipments of ammunition", "humanitarian convoys", "generators", "tonnes of fertiliser",
         "railway wagons of munitions", "containers of medical supplies"]
PLACES = [
    "Ukraine", "Belarus", "Russia", "Kyiv", "Kharkiv", "Minsk", "Donetsk", "Luhansk", "Kherson",
    "Zaporizhzhia", "Mariupol", "Bakhmut", "Odesa", "Lviv", "Dnipro", "Sumy", "Chernihiv",
    "Izium", "Lyman", "Avdiivka", "Vuhledar", "Brest", "Gomel", "Mozyr", "Grodno", "Vitebsk",
    "Mogilev", "Pinsk", "Belgorod", "Kursk", "Bryansk", "Crimea", "Sevastopol", "Mykolaiv",
    "Poltava", "Zhytomyr", "Rivne", "Volyn", "Kramatorsk", "Sloviansk", "Pokrovsk", "Toretsk",
    "Kupiansk", "Enerhodar", "Nova Kakhovka", "Melitopol", "Berdiansk", "Tokmak", "Orikhiv",
    "Huliaipole", "Chasiv Yar", "Siversk", "Soledar", "Lysychansk", "Sievierodonetsk",
    "Irpin", "Bucha", "Hostomel", "Borodianka", "Makariv", "Vyshhorod", "Bila Tserkva",
    "Uman", "Vinnytsia", "Khmelnytskyi", "Ternopil", "Chernivtsi", "Uzhhorod",
    "Ivano-Frankivsk", "Kropyvnytskyi", "Cherkasy", "Kremenchuk", "Kryvyi Rih", "Nikopol",
    "Marhanets", "Pavlohrad", "Novomoskovsk", "Bakhchysarai", "Kerch", "Dzhankoi",
    "Yevpatoria", "Feodosia", "Rostov", "Taganrog", "Voronezh", "Smolensk", "Pskov",
    "Kaliningrad", "Baranovichi", "Lida", "Orsha", "Babruysk", "Slutsk", "Zhlobin",
    "Rechytsa", "Kalinkavichy", "Luninets", "Stolin", "Yelsk", "Naroulia", "Khoiniki",
]
WHEN = ["since October", "last week", "on Monday", "on Tuesday", "overnight",
        "in March 2022", "over the past month", "early in the war", "this year", "in 2023",
        "since the invasion began", "over the next two days", "in the past 24 hours",
        "during the winter", "before the offensive", "after the ceasefire talks",
        "in recent days", "since the summer", "by the end of the year", "last autumn"]
COUNTRIES = ["Russia", "Belarus", "Ukraine", "Poland", "Lithuania", "Moldova", "China", "Iran"]
PLANS = ["plans to", "is preparing to", "is ready to", "has refused to", "intends to",
         "is unable to", "has agreed to"]
ACTIONS = ["join the war", "launch an attack from the north", "close the border",
           "hold military exercises", "mobilise reservists", "resume grain exports",
           "restore the power grid", "open a humanitarian corridor", "host nuclear weapons",
           "expel foreign diplomats", "rebuild the bridge", "begin peace talks"]
ROLES = ["a local official", "a military analyst", "a spokesperson", "a witness",
         "a senior commander", "a regional lawmaker", "an aid worker", "a border official"]
TOPICS = ["belarus", "russia", "ukraine", "casualties", "troop-movements", "energy",
          "humanitarian", "sanctions", "air-defence", "grain", "nuclear", "refugees",
          "disinformation", "infrastructure", "diplomacy", "prisoners"]
STANCES = ["asserts", "asserts", "asserts", "reports", "reports", "supports", "disputes",
           "denies"]
OUTLETS = ["Daily", "Telegraph", "Herald", "Pravda", "Today", "News", "Observer", "Gazette",
           "Courier", "Post", "Monitor", "Review"]

DETAILS = [
    "citing satellite images", "according to a post on Telegram", "in a televised address",
    "without providing evidence", "despite earlier denials", "as the front line shifted east",
    "in the first such report since the summer", "quoting unnamed officials",
    "in a briefing for foreign journalists", "a figure that could not be verified",
    "amid heavy fighting", "after a night of air raid sirens", "during a visit to the region",
    "in an interview with a German newspaper", "while talks in Istanbul stalled",
    "as power cuts spread across the country", "according to intercepted radio traffic",
    "in a statement posted online", "citing local hospital records",
    "according to video geolocated by researchers", "contradicting the official tally",
    "as winter temperatures fell below freezing", "ahead of a summit in Brussels",
    "while the bridge remained closed", "in remarks to state television",
    "citing prisoner interrogations", "according to railway timetables",
    "in a report to the Security Council", "based on drone footage",
    "as evacuation trains left the city", "after the dam was destroyed",
    "according to the electricity operator", "citing customs data", "in a weekly bulletin",
    "in a leaked memo", "during a press conference in Warsaw", "citing flight tracking data",
    "according to shipping records", "after the grain deal collapsed",
    "in the wake of the mutiny", "amid reports of desertion", "citing mobile phone data",
]

_SYLLABLES = ["ko", "va", "len", "shen", "ro", "pet", "ri", "mak", "sy", "mo", "hor", "dy",
              "bo", "dan", "chuk", "lyk", "ner", "zar", "tsi", "vol", "byt", "ka", "mir", "sla",
              "tor", "ska", "yev", "hen", "ov", "nik", "luk", "ash", "ba", "dro", "zhy", "pol"]

TEMPLATES = [
    "{actor} said {n} {people} were {harmed} in {place} {when}.",
    "{actor} said {n} {units} have been {moved} to {place} {when}.",
    "{place} was {hit} by {n} {weapons} {when}, {actor} said.",
    "{actor} denied that {force} {hit} {people} in {place}.",
    "{n} {goods} arrived in {place} {when}, according to {actor}.",
    "{actor} said {country} {plans} {action} {when}.",
    "{person}, {role}, said {n} {people} were {harmed} near the village of {village}.",
    "At least {n} {people} have been {harmed} in the {place} region {when}, {actor} reported.",
    "{actor} claimed that {n} {units} were destroyed near {place} {when}.",
    "{person}, {role}, said {force} {moved} {n} {units} to {village} {when}.",
    "{actor} said there are not enough {units} in {place} to launch an attack.",
    "{country} {plans} {action}, {actor} said in a statement {when}.",
    "More than {n} {people} fled {place} {when} as {weapons} {hit} residential areas.",
    "{actor} accused {force} of using {weapons} against {people} in {place}.",
    "The number of {people} {harmed} in {place} has risen to {n}, {actor} said.",
    "{force} lost {n} {units} in fighting around {village}, according to {actor}.",
    "{actor} reported that {n} {goods} were seized at the border with {country}.",
    "Satellite images show {n} {units} near {place}, {actor} said.",
    "{person}, {role}, denied that {people} were {harmed} in {village}.",
    "{country} will receive {n} {goods} {when}, {actor} announced.",
]

WORD = re.compile(r"\w+")


def _zipf(n: int, s: float = 1.0) -> list[float]:
    return list(accumulate(1.0 / (rank + 1) ** s for rank in range(n)))


class Corpus:
    """A seeded generator of claims (texts, topics, sources)."""

    def __init__(self, seed: int = 20221207, *, names: int = 60_000, villages: int = 30_000):
        self.rng = random.Random(seed)
        self.surnames = self._words(names, ending=("enko", "chuk", "ov", "ska", "yk", "ich"))
        self.villages = [w.capitalize() + tail for w, tail in zip(
            self._words(villages, ending=()), self.rng.choices(
                ["ivka", "ove", "ske", "yn", "ychi", "ets"], k=villages), strict=True)]
        self.sources = self._sources()
        self._pool_map = self._pools()
        self._cum = {name: _zipf(len(pool)) for name, pool in self._pool_map.items()}

    def _words(self, count: int, *, ending: Sequence[str]) -> list[str]:
        seen: set[str] = set()
        out: list[str] = []
        while len(out) < count:
            word = "".join(self.rng.choices(_SYLLABLES, k=self.rng.randint(2, 3)))
            word = word.capitalize() + (self.rng.choice(ending) if ending else "")
            if word not in seen:
                seen.add(word)
                out.append(word)
        return out

    def _sources(self) -> list[str]:
        """Source names: the well-known actors, then outlets named after places."""
        names = [a.removeprefix("the ").removeprefix("a ") for a in ACTORS]
        names = [n[0].upper() + n[1:] for n in names]
        for place in PLACES:
            for outlet in self.rng.sample(OUTLETS, 4):
                names.append(f"{place} {outlet}")
        return list(dict.fromkeys(names))

    def _pools(self) -> dict[str, Sequence[str]]:
        return {"actor": ACTORS, "people": PEOPLE, "harmed": HARMED, "units": UNITS,
                "moved": MOVED, "weapons": WEAPONS, "hit": HIT, "goods": GOODS,
                "place": PLACES, "when": WHEN, "country": COUNTRIES, "plans": PLANS,
                "action": ACTIONS, "role": ROLES, "person": self.surnames,
                "village": self.villages, "topic": TOPICS, "source": self.sources,
                "detail": DETAILS,
                "template": TEMPLATES}

    def pick(self, pool: str) -> str:
        return self.rng.choices(self._pool_map[pool], cum_weights=self._cum[pool])[0]

    def number(self) -> str:
        n = int(self.rng.paretovariate(0.8) * 3)
        return f"{n:,}" if self.rng.random() < 0.7 else str(n)

    def text(self) -> str:
        """One claim text."""
        template = self.pick("template")
        values = {name: self.pick(name) for name in (
            "actor", "people", "harmed", "units", "moved", "weapons", "hit", "goods", "place",
            "when", "country", "plans", "action", "role")}
        values["person"] = self.rng.choice(self.surnames)  # uniform: rare terms
        values["village"] = self.rng.choice(self.villages)
        values["force"] = self.rng.choice(["Russian forces", "Ukrainian forces",
                                           "Belarusian troops", "Wagner fighters"])
        values["n"] = self.number()
        text = template.format(**values)
        if self.rng.random() < 0.6:
            text = f"{text[:-1]}, {self.pick('detail')}."
        return text[0].upper() + text[1:]

    def claims(self, count: int) -> Iterator[tuple[str, str, str, str]]:
        """(text, topic, source name, stance) for `count` claims."""
        for _ in range(count):
            yield self.text(), self.pick("topic"), self.pick("source"), \
                self.rng.choice(STANCES)

    def items(self, count: int, *, duplicates: float = 0.03,
              origin: str = "bench-feed") -> list[dict]:
        """Batch-ingest items (ClaimCreate bodies): sources by name, some exact duplicates."""
        items: list[dict] = []
        for n in range(count):
            if items and self.rng.random() < duplicates:
                text = self.rng.choice(items)["text"]  # the same claim seen in another feed
            else:
                text = self.text()
            attributions = [{"source": self.pick("source"), "stance": self.rng.choice(STANCES)}]
            if self.rng.random() < 0.3:
                attributions.append({"source": self.pick("source"), "stance": "reports",
                                     "citation_url": f"https://example.org/report/{n}"})
            topics = list(dict.fromkeys([self.pick("topic"), self.pick("topic")]))
            items.append({"text": text, "topics": topics, "origin": origin,
                          "external_id": f"item-{n}", "attributions": attributions})
        return items


def document_frequencies(texts: Iterator[str]) -> tuple[Counter, int]:
    """How many texts each lower-cased word occurs in, and how many texts there were."""
    df: Counter = Counter()
    total = 0
    for text in texts:
        df.update(set(WORD.findall(text.lower())))
        total += 1
    return df, total


_SKIP = frozenset((  # noqa: SIM905  (a word list reads better as prose)
    "the and that was were have been said from with near there are not enough "
    "launch attack according this").split())


def pick_queries(df: Counter, total: int) -> list[dict]:
    """A fixed query mix by how common the terms are: rare, medium, common and two-word."""
    words = [(w, n) for w, n in df.items() if len(w) >= 4 and not w.isdigit() and w not in _SKIP]
    words.sort(key=lambda wn: (-wn[1], wn[0]))

    def band(low: float, high: float, count: int) -> list[str]:
        inside = [w for w, n in words if low * total <= n <= high * total]
        step = max(1, len(inside) // count)
        return inside[::step][:count]

    common = [w for w, _ in words[:4]]
    medium = band(0.004, 0.02, 8)
    rare_pool = [w for w, n in words if 2 <= n <= max(2, total // 20_000)]
    rare = rare_pool[:: max(1, len(rare_pool) // 8)][:8]
    if len(rare) < 8:
        rare = [w for w, _ in words[::-1]][:: max(1, len(words) // 50)][:8]
    mixed = [f"{medium[0]} {common[0]}", f"{rare[0]} {common[1]}", f"{common[0]} {common[1]}",
             f"{medium[1]} {medium[2]}", f"{rare[1]} {rare[2]}", f"{common[2]} {medium[3]}"]
    out = [{"q": w, "kind": "common", "df": df[w]} for w in common]
    out += [{"q": w, "kind": "medium", "df": df[w]} for w in medium]
    out += [{"q": w, "kind": "rare", "df": df[w]} for w in rare]
    out += [{"q": q, "kind": "two-word", "df": None} for q in mixed]
    return out
