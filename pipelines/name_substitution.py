"""Test variants that change how a tagged sentence is written, not what a tagger should find.

Re-cased copies (lower-cased, upper-cased) keep every token's tag. Name substitution replaces
the value of each span of some types (ATIS's cities, airlines and airports; CoNLL-2003's
persons, locations and organisations) by a name that the training split never has: a value
of two words may become one of three, and the tags of the span and of every later token move
with the tokens. The names come from fixed lists below, each cut into three disjoint pools:
one for the test variant, one for the development variant (for choosing a model) and one for
training-time augmentation, so that no name the model trains on is ever scored.
"""

from __future__ import annotations

import collections
import dataclasses
import zlib
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import tensorflow as tf

SPLITS = ("test", "dev", "train")


def name_list(text: str) -> tuple[str, ...]:
    """Comma-separated names (line breaks inside a name are spaces) -> a tuple of names."""
    return tuple(" ".join(name.split()) for name in text.split(",") if name.strip())


def split_pools(names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """One list -> three disjoint pools: every third name for test, dev and train."""
    names = tuple(names)
    return {split: names[index::3] for index, split in enumerate(SPLITS)}


# ATIS is lower-cased; none of these names has a word of its utterances (GENERIC_WORDS aside).
ATIS_CITIES = name_list("""
kelowna, saskatoon, moncton, fredericton, sudbury, kamloops, nanaimo, halifax, winnipeg,
regina, albuquerque, boise, spokane, fresno, sacramento, reno, tucson, el paso, amarillo,
lubbock, wichita, tulsa, omaha, des moines, cedar rapids, duluth, fargo, bismarck, sioux
falls, billings, missoula, cheyenne, laramie, provo, ogden, flagstaff, yuma, santa fe,
anchorage, fairbanks, juneau, honolulu, savannah, pensacola, tallahassee, gainesville,
jacksonville, sarasota, baton rouge, corpus christi, walla walla, grand rapids, coeur
d'alene, reykjavik, tromso, bergen, gothenburg, aarhus, tampere, tallinn, riga, vilnius,
gdansk, krakow, wroclaw, brno, bratislava, ljubljana, zagreb, sarajevo, skopje, tirana,
thessaloniki, heraklion, izmir, antalya, tbilisi, yerevan, baku, almaty, tashkent, bishkek,
irkutsk, novosibirsk, kazan, murmansk, lviv, odesa, minsk, porto, coimbra, seville, granada,
valencia, bilbao, zaragoza, palermo, catania, bologna, verona, trieste, genoa, marseille,
lyon, toulouse, bordeaux, nantes, strasbourg, grenoble, antwerp, ghent, rotterdam, utrecht,
eindhoven, dortmund, leipzig, dresden, nuremberg, bremen, stuttgart, freiburg, basel,
lausanne, innsbruck, salzburg, graz, cork, galway, belfast, glasgow, aberdeen, inverness,
cardiff, swansea, leeds, sheffield, marrakesh, casablanca, tunis, khartoum, addis ababa,
nairobi, mombasa, kampala, kigali, dar es salaam, lusaka, harare, windhoek, gaborone,
maputo, luanda, accra, dakar, bamako, ouagadougou, durban, kathmandu, dhaka, colombo,
chennai, kolkata, hyderabad, pune, jaipur, lahore, karachi, muscat, doha, amman, beirut,
osaka, kyoto, sapporo, fukuoka, busan, taipei, xiamen, hangzhou, nanjing, chengdu, kunming,
harbin, qingdao, hanoi, phnom penh, chiang mai, penang, cebu, davao, bogota, medellin,
quito, cusco, asuncion, montevideo, rosario, mendoza, valparaiso, recife, fortaleza, manaus,
curitiba, porto alegre, auckland, wellington, christchurch, dunedin, hobart, darwin, cairns,
adelaide, perth, brisbane, abu dhabi, kuala lumpur, buenos aires, sao paulo, port moresby,
ho chi minh
""")


ATIS_AIRLINES = name_list("""
ryanair, easyjet, qantas, emirates, etihad, iberia, aeroflot, finnair, icelandair, aer
lingus, jetblue, spirit airlines, frontier airlines, allegiant air, hawaiian airlines,
korean air, cathay pacific, singapore airlines, turkish airlines, qatar airways, klm, aegean
airlines, vueling, wizz air, norwegian, brussels airlines, swiss, aeromexico, avianca,
latam, copa airlines, westjet, porter airlines, sunwing, volaris, interjet, azul, kenya
airways, ethiopian airlines, royal air maroc, egyptair, saudia, indigo, spicejet, vistara,
philippine airlines, garuda indonesia, malaysia airlines, airasia, thai airways, vietnam
airlines, eva air, asiana, jeju air, jetstar, virgin australia, fiji airways, scoot,
skymark, flybe, loganair, aurigny, wideroe, transavia, condor, eurowings, smartwings,
airbaltic, tarom, croatia airlines, olympic air, luxair, binter, volotea, air europa, air
tahiti nui, air mauritius, air seychelles, air malta, air serbia, air astana, air niugini
""")


ATIS_AIRPORTS = name_list("""
heathrow, gatwick airport, schiphol, changi airport, narita international, haneda airport,
incheon international airport, mccarran international, hartsfield, bradley international
airport, sea-tac airport, hobby airport, meigs, kastrup airport, arlanda, gardermoen,
vnukovo, sheremetyevo, pulkovo airport, barajas, fiumicino, malpensa airport, linate, tegel
airport, tempelhof, orly, roissy, zaventem airport, kloten, ciampino, stansted airport,
luton airport, dorval, mirabel airport, pudong international, hongqiao, kimpo airport,
suvarnabhumi, tullamarine airport, kingsford smith airport, jomo kenyatta international,
bole international, tocumen, galeao, guarulhos airport, ezeiza, benito juarez international,
keflavik, vantaa airport, ruzyne, okecie, ferihegy, otopeni, domodedovo, ataturk airport,
sabiha gokcen, ben gurion international, queen alia international, hamad international,
dubai international, chhatrapati shivaji international, indira gandhi international,
tribhuvan international, bandaranaike international, ninoy aquino international,
soekarno-hatta, ngurah rai airport, sepang, chek lap kok, taoyuan international, kansai
international, chubu centrair, itami airport, chitose airport, jorge chavez international,
el alto, carrasco international, pajas blancas, tancredo neves, mariscal sucre
""")


# CoNLL-2003 is cased; no word of these names is a word of eng.train (case aside), the
# generic designators aside. Persons are a pool's surnames, or a first name and a surname.
CONLL_FIRST_NAMES = name_list("""
Oluwaseun, Thandiwe, Siddharth, Yevgenia, Kwabena, Aigerim, Nnamdi, Saoirse, Tadhg, Ngozi,
Xiomara, Anneliese, Ingeborg, Radomir, Zuzana, Mirela, Teodora, Dagny, Solveig, Eulalia,
Leocadia, Ximena, Itzel, Anahera, Wiremu, Keoni, Leilani, Priyanka, Aarav, Ishaan, Vihaan,
Anaya, Rhiannon, Bronwen, Eilidh, Morag, Ailsa, Caoimhe, Niamh, Oisin, Cillian, Ruairi,
Fionnuala, Aoife, Dervla, Jadwiga, Genowefa, Kazimiera, Svetoslav, Borislava, Zdravko,
Ljubomir, Dobromir, Velimir, Chidinma, Ifeoma, Obiageli, Adaeze, Chukwuemeka, Temitope,
Olamide, Akosua, Efua, Makana, Yaretzi, Bogumila, Grainne, Tuomas, Annukka, Pirjo, Sirpa,
Kalani, Tavita, Losaline, Mereana, Hinewai, Ketevan, Nino, Tamuna, Levan, Anush, Gayane,
Tigran, Nurlan, Dinara, Yerlan, Aizhan, Bakyt, Gulnara, Farrukh, Dilnoza, Shahzoda
""")


CONLL_SURNAMES = name_list("""
Okonkwo, Adeyemi, Oyelaran, Ezeagu, Abernethy, Featherstonehaugh, Vandersloot, Oosterhuis,
Kowalczyk, Wisniewska, Przybylski, Grzelak, Szczepanik, Brzozowski, Dobrowolska, Zielinska,
Wojcikiewicz, Hrabovsky, Lindqvist, Laaksonen, Tuominen, Heikkila, Salminen, Jokela,
Rautiainen, Oyelowo, Achterberg, Uytterhoeven, Tshabalala, Mahlangu, Ngcobo, Mthembu,
Thistlewood, Quigglesworth, Fairweather, Honeycutt, Ravensworth, Cholmondeley, Marjoribanks,
Wrigglesworth, Throssell, Bittlestone, Yamashiro, Tsukamoto, Matsuzaka, Ishiguro,
Wakabayashi, Chaudhuri, Bhattacharjee, Raghunathan, Venkataraman, Krishnamurthy,
Padmanabhan, Iyengar, Deshpande, Kulkarni, Patwardhan, Gokhale, Abeywickrama,
Wickremesinghe, Gunawardena, Senanayake, Nakamatsu, Higashiyama, Kobayakawa, Ogasawara,
Tokugawa, Kasprowicz, Szymborska, Milosz, Gombrowicz, Przesmycki, Wyspianski, Sienkiewicz,
Kochanowski, Mickiewicz, Slowacki, Norwid, Tuwim, Kapuscinski, Lem, Mrozek
""")


CONLL_LOCATIONS = name_list("""
Ouarzazate, Tamanrasset, Chefchaouen, Essaouira, Lamu, Kisumu, Mbarara, Gulu, Mzuzu, Kasama,
Francistown, Maun, Lobatse, Quelimane, Toamasina, Fianarantsoa, Thimphu, Pokhara,
Biratnagar, Batticaloa, Kozhikode, Thrissur, Madurai, Tirunelveli, Vellore, Mangaluru,
Hubballi, Belagavi, Aurangabad, Nashik, Jodhpur, Udaipur, Bikaner, Ajmer, Gwalior, Jabalpur,
Raipur, Ranchi, Dhanbad, Siliguri, Guwahati, Imphal, Aizawl, Shillong, Kohima, Agartala,
Sylhet, Rajshahi, Khulna, Taunggyi, Myitkyina, Luang Prabang, Savannakhet, Pakse,
Battambang, Siem Reap, Kampot, Nha Trang, Udon Thani, Hat Yai, Nakhon Ratchasima, Kota
Kinabalu, Sandakan, Sibu, Kuantan, Balikpapan, Pontianak, Jayapura, Kupang, Mataram, Iloilo,
Bacolod, Zamboanga, Legazpi, Tacloban, Kagoshima, Matsuyama, Kanazawa, Niigata, Aomori,
Morioka, Asahikawa, Hakodate, Kushiro, Obihiro, Yeosu, Mokpo, Gangneung, Chuncheon, Jeonju,
Tainan, Hualien, Keelung, Hsinchu, Lanzhou, Xining, Yinchuan, Hohhot, Baotou, Datong,
Taiyuan, Zhengzhou, Luoyang, Kaifeng, Hefei, Nanchang, Changsha, Guilin, Nanning, Haikou,
Sanya, Zhuhai, Shantou, Wenzhou, Ningbo, Wuxi, Yangzhou, Xuzhou, Yantai, Weihai,
Shijiazhuang, Tangshan, Qinhuangdao, Changchun, Qiqihar, Mudanjiang, Jiamusi, Saguenay,
Rimouski, Sherbrooke, Chicoutimi, Yellowknife, Whitehorse, Iqaluit, Inuvik, Kelowna, Tulum,
Queretaro, Zacatecas, Hermosillo, Culiacan, Mazatlan, Saltillo, Torreon, Villahermosa,
Chetumal, Quetzaltenango, Esteli, Barranquilla, Bucaramanga, Manizales, Popayan, Riobamba,
Chiclayo, Piura, Iquitos, Huancayo, Ayacucho, Tacna, Cochabamba, Oruro, Tarija, Encarnacion,
Neuquen, Bariloche, Ushuaia, Comodoro Rivadavia, Temuco, Valdivia, Antofagasta, Iquique,
Punta Arenas, Walla Walla, Coeur d'Alene, Corpus Christi
""")


# Invented: organisations are a stem alone or a stem and a designator ("Tarvonix Bank").
CONLL_ORGANISATION_STEMS = name_list("""
Tarvonix, Quellstrom, Veridane, Brixworth, Calloway, Denholm, Elmsworth, Fenwright,
Glenmarrow, Harrowgate, Islestone, Jorvalen, Kestrelmoor, Larchmont, Merriwether,
Northcliffe, Oakhaven, Pemberly, Quarrington, Ravensholt, Silverbeck, Thornbury, Umberlane,
Valemont, Wyndham, Xanterra, Yarrowby, Zephyrine, Ashcombe, Blackmere, Coldharbour,
Dunmarrow, Evenwood, Foxhollow, Greyfriars, Hollowmere, Ironbridge, Juniperhill, Kingsmere,
Lockridge, Moorcroft, Netherfield, Orchardleigh, Pinecrest, Queensmead, Rookwood,
Stonebridge, Tidewater, Underhill, Velvetleaf, Westbrook, Yewdale, Zinderly, Amberfield,
Bramblewood, Cinderford, Dovercourt, Eldergrove, Fairhaven
""")


CONLL_ORGANISATION_DESIGNATORS = name_list("""
Group, Holdings, Bank, Corp, United, Party, Council, Institute, Airlines, Rovers, Athletic,
Motors, Industries, Energy, Foundation, Union
""")

# Words a name may share with the training split: they say what it names ("... airport",
# "... airlines", "... Bank"), while the rest of the name is unseen.
GENERIC_WORDS = frozenset(("air", "airline", "airlines", "airways", "airport", "international")) | {
    designator.lower() for designator in CONLL_ORGANISATION_DESIGNATORS
}


def tag_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """IOB2 tags -> (start, end, type) of each span, end exclusive. An "I-" tag that does not
    continue a span of its type starts one, as seqeval reads it."""
    spans = []
    for index, tag in enumerate(tags):
        if tag == "O":
            continue
        span_type = tag[2:]
        if tag.startswith("I-") and spans and spans[-1][1:] == (index, span_type):
            spans[-1] = (spans[-1][0], index + 1, span_type)
        else:
            spans.append((index, index + 1, span_type))
    return spans


def substitute_spans(
    tokens: list[str],
    tags: list[str],
    replace: Callable[[str, list[str]], list[str] | None],
) -> tuple[list[str], list[str]]:
    """Replaces the tokens of each span by `replace(span_type, span_tokens)` (None keeps it).

    A replacement of any length is tagged "B-type", "I-type", ...; the tokens and tags after
    it move with it, so every other span keeps its tokens.
    """
    new_tokens, new_tags, position = [], [], 0
    for start, end, span_type in tag_spans(tags):
        name = replace(span_type, tokens[start:end])
        if name is None:
            continue
        new_tokens += tokens[position:start] + list(name)
        new_tags += tags[position:start] + [f"B-{span_type}"]
        new_tags += [f"I-{span_type}"] * (len(name) - 1)
        position = end
    return new_tokens + tokens[position:], new_tags + tags[position:]


def words_of(examples: Iterable[dict]) -> set[str]:
    """The lower-cased tokens of `examples`."""
    return {token.lower() for example in examples for token in example["tokens"]}


@dataclasses.dataclass(frozen=True)
class NameSubstitution:
    """Replaces the names of some span types by names of disjoint pools, per split.

    Args:
        pools: kind -> split ("test", "dev", "train") -> names. A span type is of a kind
            when it is the kind or ends with "." and the kind ("toloc.city_name" is a
            "city_name"); spans of other types are kept.
        seed: int. Seeds which name replaces which value.

    `substituted` maps each distinct value of a split to one name of that split's pool, so a
    city named twice in a sentence stays one city; `augmented` draws a name from the
    training pool for every span, for training copies.
    """

    pools: Mapping[str, Mapping[str, tuple[str, ...]]]
    seed: int = 0

    def kind(self, span_type: str) -> str | None:
        for kind in self.pools:
            if span_type == kind or span_type.endswith(f".{kind}"):
                return kind
        return None

    def names(self, split: str) -> dict[str, tuple[str, ...]]:
        """The names of a split's pool, per kind; the development pool for any other split
        than "test" and "train"."""
        pool = split if split in SPLITS else "dev"
        return {kind: pools[pool] for kind, pools in self.pools.items()}

    def mapping(self, examples: list[dict], split: str) -> dict[str, dict[str, str]]:
        """kind -> {value: name} for every distinct value of `examples`.

        Values are visited in sorted order; each gets a name whose number of words is the
        closest to its own, unused ones first (so distinct values get distinct names while
        the pool lasts), drawn with a generator seeded by `seed` and the split's name.
        """
        values = collections.defaultdict(set)
        for example in examples:
            for start, end, span_type in tag_spans(example["tags"]):
                kind = self.kind(span_type)
                if kind is not None:
                    values[kind].add(" ".join(example["tokens"][start:end]))
        generator = np.random.default_rng([self.seed, zlib.crc32(split.encode())])
        mapping = {}
        for kind, names in self.names(split).items():
            used, mapping[kind] = set(), {}
            for value in sorted(values[kind]):
                unused = [name for name in names if name not in used] or list(names)
                length = len(value.split())
                gap = min(abs(len(name.split()) - length) for name in unused)
                closest = [name for name in unused if abs(len(name.split()) - length) == gap]
                name = closest[generator.integers(len(closest))]
                used.add(name)
                mapping[kind][value] = name
        return mapping

    def substituted(self, examples: list[dict], split: str) -> tuple[list[dict], dict]:
        """(`examples` with every name replaced, the mapping used)."""
        mapping = self.mapping(examples, split)

        def replace(span_type, tokens):
            kind = self.kind(span_type)
            if kind is None:
                return None
            return self._written_like(tokens, mapping[kind][" ".join(tokens)])

        return [self._replaced(example, replace) for example in examples], mapping

    def augmented(self, examples: list[dict], fraction: float, seed: int) -> list[dict]:
        """Copies of a `fraction` of the examples that hold a name, each name replaced by one
        drawn from the training pool (every span draws its own)."""
        generator = np.random.default_rng([self.seed, seed])
        names = self.names("train")

        def replace(span_type, tokens):
            kind = self.kind(span_type)
            if kind is None:
                return None
            return self._written_like(tokens, names[kind][generator.integers(len(names[kind]))])

        copies = []
        for example in examples:
            has_name = any(self.kind(span[2]) for span in tag_spans(example["tags"]))
            if has_name and generator.random() < fraction:
                copies.append(self._replaced(example, replace))
        return copies

    @staticmethod
    def _written_like(tokens: list[str], name: str) -> list[str]:
        """`name`'s words, with the possessive "'s" the value's last word had ("boston's")."""
        words = name.split()
        if tokens[-1].endswith("'s") and not words[-1].endswith("'s"):
            words[-1] += "'s"
        return words

    @staticmethod
    def _replaced(example: dict, replace) -> dict:
        tokens, tags = substitute_spans(list(example["tokens"]), list(example["tags"]), replace)
        return {**example, "text": " ".join(tokens), "tokens": tokens, "tags": tags}


def examples_from_dataset(examples: tf.data.Dataset) -> list[dict]:
    """A dataset of tagged sentences as dicts of str (and lists of str)."""

    def plain(value):
        if isinstance(value, bytes):
            return value.decode("utf-8")
        if isinstance(value, np.ndarray) and value.dtype == object:
            return [item.decode("utf-8") for item in value]
        return value

    return [
        {key: plain(value) for key, value in example.items()}
        for example in examples.as_numpy_iterator()
    ]


def dataset_from_examples(examples: list[dict], element_spec) -> tf.data.Dataset:
    """`examples_from_dataset`'s inverse, for datasets of `element_spec`."""

    def dense(spec):  # A sliced ragged batch gives rows of ragged rank 0: plain tensors.
        if isinstance(spec, tf.RaggedTensorSpec) and spec.ragged_rank == 0:
            return tf.TensorSpec(spec.shape, spec.dtype)
        return spec

    signature = tf.nest.map_structure(dense, element_spec)
    return tf.data.Dataset.from_generator(lambda: iter(examples), output_signature=signature)


def conll_person_names(split: str) -> tuple[str, ...]:
    """A pool's surnames alone, then each of its first names with each of its surnames."""
    firsts, surnames = split_pools(CONLL_FIRST_NAMES)[split], split_pools(CONLL_SURNAMES)[split]
    return surnames + tuple(f"{first} {surname}" for first in firsts for surname in surnames)


def conll_organisation_names(split: str) -> tuple[str, ...]:
    """A pool's invented stems alone, then each with each generic designator ("... Bank")."""
    stems = split_pools(CONLL_ORGANISATION_STEMS)[split]
    designators = CONLL_ORGANISATION_DESIGNATORS
    return stems + tuple(f"{stem} {designator}" for stem in stems for designator in designators)


SUBSTITUTION_SEED = 21  # Fixed: the variants are part of the benchmark.
ATIS_NAMES = NameSubstitution(
    pools={
        "city_name": split_pools(ATIS_CITIES),
        "airline_name": split_pools(ATIS_AIRLINES),
        "airport_name": split_pools(ATIS_AIRPORTS),
    },
    seed=SUBSTITUTION_SEED,
)
CONLL_NAMES = NameSubstitution(
    pools={
        "PER": {split: conll_person_names(split) for split in SPLITS},
        "LOC": split_pools(CONLL_LOCATIONS),
        "ORG": {split: conll_organisation_names(split) for split in SPLITS},
    },
    seed=SUBSTITUTION_SEED,
)
