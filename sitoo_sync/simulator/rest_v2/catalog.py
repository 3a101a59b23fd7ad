"""Sites, stores, warehouses, POS payment types, product groups, manufacturers, categories
and products of the simulated REST v2 world (fact sheet sections 3, 4, 5.1, 7 and 9).

Stores are the z-report stores of `chain.STORES`: a store's `externalid` is the z-reports'
`store_id` (the cash-register doc calls it "external ID of the Store in Sitoo"). Each store
has one sellable warehouse; store "200" also has a "Reclaims" warehouse (usetype 40, not
sellable) and site 1 has a web warehouse with no store. Codes the docs give only by example
are used as the fact sheet infers them: storetype 10/20/30, warehousetype 10, usetype 10/40,
productgrouptype 10. Product `moneyprice` is taken to include VAT and `moneypricein` (cost)
to exclude it (assumption: the docs say only that `moneypriceorg`/`moneypricein` exclude VAT).

The registers sell this catalogue: `pos_assortments` gives each site's products as the
journals' receipt items name them (the live products active on the POS, less the few that
are deleted at the end of the history), rebuilt from the seed alone so that a journal never
needs the REST v2 world built.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from typing import NamedTuple

from sitoo_sync.simulator.chain import SITE_IDS, SITE_TIME_ZONE, STORES, guid
from sitoo_sync.simulator.money import money, net_of
from sitoo_sync.simulator.rest_v2.config import RestConfig
from sitoo_sync.simulator.rest_v2.query import Body

COUNTRY = {1: "SE", 2: "NO"}
CURRENCY = {1: "SEK", 2: "NOK"}
POS_TIME_ZONE = SITE_TIME_ZONE  # a register's zone is its site's
# (group name, VAT % in Sweden, VAT % in Norway)
GROUPS = (
    ("Clothing", 25, 25),
    ("Shoes", 25, 25),
    ("Accessories", 25, 25),
    ("Books", 6, 0),
    ("Food & Drink", 12, 15),
)
NOUNS = {
    "Clothing": ("T-shirt", "Hoodie", "Jeans", "Jacket"),
    "Shoes": ("Sneaker", "Boot", "Sandal"),
    "Accessories": ("Cap", "Scarf", "Tote Bag", "Belt"),
    "Books": ("Cookbook", "Novel", "Atlas"),
    "Food & Drink": ("Coffee 500 g", "Dark Chocolate", "Tea Tin"),
}
WEIGHED = "Pick & Mix"  # the title's noun of a product sold by weight
ADJECTIVES = ("Classic", "Organic", "Nordic", "Urban", "Vintage", "Light")
MANUFACTURERS = ("Fjällstad AB", "Nordvik AS", "Lindqvist & Co", "Bergström Textil")
# (name, POSPaymentMethod code) per site; the order payments use these names.
PAYMENT_TYPES = {
    1: (("Cash", 100), ("Card", 2110), ("Swish", 710), ("Gift Card", 500), ("Klarna", 705)),
    2: (("Cash", 100), ("Card", 2110), ("Vipps MobilePay", 800), ("Gift Card", 500)),
}
CATEGORY_TREE = (("Women", ("Tops", "Shoes")), ("Men", ("Tops", "Shoes")), ("Home", ("Pantry",)))
STORE_TYPES = (10, 10, 20, 30, 10)  # Store, Store, Outlet, Pop-Up, Store (fact sheet 4)


@dataclass
class Catalog:
    """Everything of section 3-9 except stock, orders and users; keyed for joins."""

    sites: list[Body] = field(default_factory=list)
    stores: list[Body] = field(default_factory=list)
    warehouses: list[Body] = field(default_factory=list)
    payment_types: dict[int, list[Body]] = field(default_factory=dict)
    product_groups: dict[int, list[Body]] = field(default_factory=dict)
    manufacturers: dict[int, list[Body]] = field(default_factory=dict)
    categories: dict[int, list[Body]] = field(default_factory=dict)
    products: dict[int, Body] = field(default_factory=dict)  # live products by productid
    deleted: dict[int, Body] = field(default_factory=dict)  # deleted products, by productid
    product_site: dict[int, int] = field(default_factory=dict)  # productid -> eshopid

    def site_ids(self) -> list[int]:
        """Every eshopid."""
        return [s["eshopid"] for s in self.sites]

    def store_by_externalid(self, externalid: str | None) -> Body | None:
        """The store whose externalid (the z-reports' store_id) is `externalid`."""
        return next((s for s in self.stores if s["externalid"] == externalid), None)

    def store_by_id(self, storeid: int | None) -> Body | None:
        """The store with `storeid`."""
        return next((s for s in self.stores if s["storeid"] == storeid), None)

    def warehouse(self, warehouseid: int) -> Body | None:
        """The warehouse with `warehouseid`."""
        return next((w for w in self.warehouses if w["warehouseid"] == warehouseid), None)

    def sales_warehouse(self, eshopid: int, store_externalid: str | None) -> Body:
        """The sellable warehouse an order of this store (or of no store) is registered to."""
        return pick_sales_warehouse(self.warehouses, eshopid, store_externalid)

    def site_products(self, eshopid: int, *, include_inactive: bool) -> list[Body]:
        """Live products of a site, by productid (the docs give no order; assumption)."""
        return [
            p
            for pid, p in sorted(self.products.items())
            if self.product_site[pid] == eshopid and (include_inactive or p["activepos"])
        ]

    def vat_of(self, eshopid: int, vatid: int) -> int:
        """The VAT % of a product group."""
        return int(next(g["value"] for g in self.product_groups[eshopid] if g["vatid"] == vatid))


def rest_random(seed: int) -> random.Random:
    """The REST v2 world's random stream; `build_catalog` is the first to draw from it."""
    return random.Random(f"rest-v2/{seed}")


def build_catalog(rng: random.Random, config: RestConfig, start: int) -> Catalog:
    """The catalogue as it stands at `start` (the beginning of the simulated history)."""
    cat = Catalog()
    for eshopid in SITE_IDS:
        host = f"demo-{COUNTRY[eshopid].lower()}.mysitoo.com"
        cat.sites.append(
            {
                "siteid": guid(rng),
                "protocol": "https",
                "server": host,
                "abspath": "/",
                "siteurl": f"https://{host}/",
                "eshopid": eshopid,
            }
        )
    for n, (externalid, name, city_line, _currency, eshopid) in enumerate(STORES, start=1):
        zip_code, _, city = city_line.rpartition(" ")
        cat.stores.append(
            {
                "storeid": n,
                "eshopid": eshopid,
                "storetype": STORE_TYPES[(n - 1) % len(STORE_TYPES)],
                "name": name,
                "externalid": externalid,
                "externalgroupid": f"{COUNTRY[eshopid]}-RETAIL",
                "phone": f"+46 8 555 0{n:02d} 00" if eshopid == 1 else "+47 22 55 50 00",
                "email": f"store{externalid}@example.com",
                "address": f"Storgatan {n}",
                "address2": "",
                "zip": zip_code,
                "city": city,
                "state": "",
                "countryid": COUNTRY[eshopid],
                "latitude": f"{59 - n * 0.5:.4f}",
                "longitude": f"{18 - n * 0.5:.4f}",
                "nearby_stores": [],
                "usetype_movein": 10,
                "usetype_moveout": 10,
                "usetype_manualin": 10,
                "usetype_manualout": 10,
                "usetype_shipmentin": 10,
                "usetype_shipmentout": 10,
                "tags": ["outlet"] if n == 3 else [],
            }
        )
    cat.warehouses = warehouse_plan()
    for store in cat.stores:  # nearby: the other stores of the same site (ints, as examples)
        store["nearby_stores"] = [
            s["storeid"] for s in cat.stores if s["eshopid"] == store["eshopid"] and s is not store
        ]

    paymenttypeid = 0
    manufacturerid = 0
    categoryid = 0
    for eshopid in SITE_IDS:
        types = []
        for order, (name, method) in enumerate(PAYMENT_TYPES[eshopid]):
            paymenttypeid += 1
            types.append(
                {
                    "paymenttypeid": paymenttypeid,
                    "paymentmethodid": method,
                    "name": name,
                    "sortorder": order,
                    "externalid": None if order % 2 else f"PT-{paymenttypeid}",
                }
            )
        cat.payment_types[eshopid] = types
        cat.product_groups[eshopid] = [
            {
                "vatid": i + 2,  # the default group is always vatid 2
                "value": vat_se if eshopid == 1 else vat_no,
                "productgrouptype": 10,
                "productgroupname": name,
                "comment": "Default" if i == 0 else "",
            }
            for i, (name, vat_se, vat_no) in enumerate(GROUPS)
        ]
        makers = []
        for name in MANUFACTURERS:
            manufacturerid += 1
            slug = name.split()[0].lower().encode("ascii", "ignore").decode()
            makers.append(
                {
                    "externalcompanyid": manufacturerid,
                    "name": name,
                    "description": "",
                    "address": "Industrivägen 1",
                    "zip": "123 45",
                    "city": "Borås",
                    "state": "",
                    "countryid": COUNTRY[eshopid],
                    "phone": "",
                    "email": f"info@{slug}.example.com",
                    "url1": f"https://{slug}.example.com",
                    "url2": "",
                }
            )
        cat.manufacturers[eshopid] = makers
        categories = []
        for sort, (root, children) in enumerate(CATEGORY_TREE):
            categoryid += 1
            root_id = categoryid
            categories.append(_category(root_id, None, root, sort, start))
            for child_sort, child in enumerate(children):
                categoryid += 1
                categories.append(_category(categoryid, root_id, child, child_sort, start))
        cat.categories[eshopid] = categories

    productid = 1000
    for eshopid in SITE_IDS:
        for n in range(config.products_per_site):
            productid += 1
            cat.products[productid] = _product(
                rng, cat, eshopid=eshopid, productid=productid, n=n, config=config, start=start
            )
            cat.product_site[productid] = eshopid
    return cat


def discontinued(cat: Catalog, per_site: int) -> list[int]:
    """The products deleted at the end of the history (once sold): the first `per_site`
    products of each site that are active on the POS, by productid."""
    out: list[int] = []
    for eshopid in cat.site_ids():
        active = cat.site_products(eshopid, include_inactive=False)
        out += [p["productid"] for p in active[:per_site]]
    return out


class PosProduct(NamedTuple):
    """A product as a register sells it: what a journal receipt item names."""

    productid: str  # as the receipt's `item-productid` carries it: a string
    sku: str
    name: str  # the product's title
    group: str  # its product group's name
    vatvalue: int  # its product group's VAT %
    weighed: bool = False  # sold by weight (unitlabel kg): one item of its weight


@dataclass(frozen=True)
class Assortment:
    """What a site's registers sell: its products, and those of each product group."""

    products: tuple[PosProduct, ...]
    by_group: dict[str, tuple[PosProduct, ...]]

    def of_group(self, group: str) -> tuple[PosProduct, ...]:
        """The group's products; every product, for a group the catalogue does not have (or
        whose products are all withdrawn)."""
        return self.by_group.get(group) or self.products


def pos_assortments(seed: int, config: RestConfig) -> dict[int, Assortment]:
    """Per site (eshopid), the products its registers sell: the catalogue's live products
    that are active on the POS, less those deleted at the end of the history (`discontinued`):
    a receipt item names a product the products listing serves, with its sku and title."""
    return _assortments(
        seed, config.products_per_site, config.inactive_every, config.deleted_products_per_site
    )


@functools.cache
def _assortments(
    seed: int, products_per_site: int, inactive_every: int, deleted_per_site: int
) -> dict[int, Assortment]:
    config = RestConfig(
        products_per_site=products_per_site,
        inactive_every=inactive_every,
        deleted_products_per_site=deleted_per_site,
    )
    # The same stream and config give the products the REST v2 world serves (the start time
    # only dates them).
    cat = build_catalog(rest_random(seed), config, 0)
    gone = set(discontinued(cat, deleted_per_site))
    out: dict[int, Assortment] = {}
    for eshopid in cat.site_ids():
        groups = {g["vatid"]: g for g in cat.product_groups[eshopid]}
        products = tuple(
            PosProduct(
                str(p["productid"]),
                p["sku"],
                p["title"],
                groups[p["vatid"]]["productgroupname"],
                int(p["vatvalue"]),
                p["unitlabel"] == "kg",
            )
            for p in cat.site_products(eshopid, include_inactive=False)
            if p["productid"] not in gone
        )
        by_group: dict[str, tuple[PosProduct, ...]] = {}
        for product in products:
            by_group[product.group] = (*by_group.get(product.group, ()), product)
        out[eshopid] = Assortment(products, by_group)
    return out


def warehouse_plan() -> list[Body]:
    """Every warehouse, in id order: store n of `STORES` has warehouse n, then the first store's
    "Reclaims" and site 1's "Web" (no store). A pure function of `STORES` (no randomness), so
    the cash-register listing (data.py) names the same warehouses the catalogue serves."""
    warehouses = [
        _warehouse(
            n,
            eshopid=eshopid,
            storeid=n,
            name=f"{name} Stock",
            currency=currency,
            usetype=10,
            sellable=True,
        )
        for n, (_externalid, name, _city, currency, eshopid) in enumerate(STORES, start=1)
    ]
    warehouses.append(
        _warehouse(
            len(warehouses) + 1,
            eshopid=1,
            storeid=1,
            name="Reclaims",
            currency="SEK",
            usetype=40,
            sellable=False,
        )
    )
    warehouses.append(
        _warehouse(
            len(warehouses) + 1,
            eshopid=1,
            storeid=None,
            name="Web",
            currency="SEK",
            usetype=10,
            sellable=True,
        )
    )
    return warehouses


def pick_sales_warehouse(
    warehouses: list[Body], eshopid: int, store_externalid: str | None
) -> Body:
    """The sellable warehouse of a store (by externalid) or, for no store, the site's storeless
    one: where its orders are registered and what its registers are listed with."""
    storeid = next((n for n, s in enumerate(STORES, start=1) if s[0] == store_externalid), None)
    for w in warehouses:
        if w["eshopid"] == eshopid and w["sellable"] and w["storeid"] == storeid:
            return w
    # A site without a storeless warehouse: the first sellable one.
    return next(w for w in warehouses if w["eshopid"] == eshopid and w["sellable"])


@functools.cache
def register_warehouseid(eshopid: int, store_externalid: str | None) -> int:
    """The `warehouseid` a register of this store (or of none) is listed with."""
    return int(pick_sales_warehouse(warehouse_plan(), eshopid, store_externalid)["warehouseid"])


def _warehouse(
    warehouseid: int,
    *,
    eshopid: int,
    storeid: int | None,
    name: str,
    currency: str,
    usetype: int,
    sellable: bool,
) -> Body:
    return {
        "warehouseid": warehouseid,
        "eshopid": eshopid,  # ours: which site lists it (the schema has no such field)
        "warehousetype": 10,
        "usetype": usetype,
        "storeid": storeid,
        "sellable": sellable,
        "currencycode": currency,
        "name": name,
        "externalid": f"WH-{warehouseid}",
        "address": "Lagervägen 2",
        "address2": "",
        "zip": "",
        "city": "",
        "state": "",
        "countryid": COUNTRY[eshopid],
    }


def _category(categoryid: int, parent: int | None, title: str, sort: int, at: int) -> Body:
    return {
        "categoryid": categoryid,
        "categoryparentid": parent,
        "visible": True,
        "sortorder": sort,
        "custom1": "",
        "custom2": "",
        "friendly": title.lower(),
        "seo_title": title,
        "seo_keywords": "",
        "seo_description": "",
        "title": title,
        "datecreated": at,
        "datemodified": at,
    }


def _product(
    rng: random.Random,
    cat: Catalog,
    *,
    eshopid: int,
    productid: int,
    n: int,
    config: RestConfig,
    start: int,
) -> Body:
    group_index = n % len(GROUPS)
    group_name = GROUPS[group_index][0]
    group = cat.product_groups[eshopid][group_index]
    adjective, noun = rng.choice(ADJECTIVES), rng.choice(NOUNS[group_name])
    # Some food is sold by weight (unitlabel kg): a register rings it up as one item of
    # its weight (a receipt item's quantity 1, decimalunitquantity "0.350").
    weighed = group_name == "Food & Drink" and (n // len(GROUPS)) % 3 == 0
    title = f"{adjective} {WEIGHED if weighed else noun}"
    gross = rng.randint(49, 1499) * 100 + rng.choice((0, 0, 50, 90))
    vat = int(group["value"])
    cost = gross * 100 // (100 + vat) * rng.randint(30, 55) // 100
    active = not (config.inactive_every and n % config.inactive_every == config.inactive_every - 1)
    categories = [c["categoryid"] for c in cat.categories[eshopid] if c["categoryparentid"]]
    category = categories[n % len(categories)]
    maker = cat.manufacturers[eshopid][n % len(cat.manufacturers[eshopid])]
    created = start - rng.randint(1, 90) * 86400
    return {
        "productid": productid,
        "sku": f"{COUNTRY[eshopid]}-{group_name[:3].upper()}-{n + 1:04d}",
        "skumanufacturer": f"M{rng.randint(10000, 99999)}",
        "title": title,
        "descriptionshort": f"{title} from {maker['name']}",
        "description": "",
        "unitlabel": "kg" if weighed else "pcs",
        "allowdecimals": weighed,
        "moneyprice": money(gross),
        "moneypriceorg": money(net_of(gross + gross // 5, vat)),
        "moneypricein": money(cost),
        "moneyfinalprice": money(gross),
        "activepos": active,
        "active": active,
        "stockcountenable": group_name != "Food & Drink" or n % 2 == 0,
        "stockallowbackorder": False,
        "vatid": group["vatid"],
        "vatvalue": vat,
        "productgrouptype": group["productgrouptype"],
        "defaultcategoryid": category,
        "categories": [category],
        "manufacturerid": maker["externalcompanyid"] if n % 5 else None,
        "manufacturerurl": maker["url1"] if n % 5 else "",
        "variantparentid": None,
        "variant": [],
        "barcode": f"73{rng.randint(10**10, 10**11 - 1)}",
        "barcodealiases": [],
        "similar": [],
        "related": [],
        "accessories": [],
        "custom1": "",
        "custom2": "",
        "custom3": "",
        "custom4": "",
        "custom5": "",
        "customattributes": {},
        "deliveryinfo": "",
        "datecreated": created,
        "datemodified": created + rng.randint(0, 86400),
    }
