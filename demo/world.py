"""The sample company's data, generated deterministically from a seed.

Every sample system (ERP database, CRM, supplier and logistics APIs) derives its data from one
`World`, so that the systems agree with each other the way real ones roughly do: the CRM knows the
ERP's customers (with a few broken cross-references), the logistics provider carries the ERP's shipped
orders, and suppliers offer the ERP's items. Each domain draws from its own random stream, so changing
the size of one does not reshuffle another.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

# A fixed "today" keeps the data independent of the wall clock.
REFERENCE_DATE = date(2026, 11, 24)

_PREFIXES = (
    "North", "South", "East", "West", "Blue", "Red", "Green", "Silver", "Golden", "Iron", "Summit",
    "Pioneer", "Atlas", "Apex", "Harbor", "Prairie", "Lakeside", "Granite", "Cedar", "Maple", "Union",
    "Pacific", "Atlantic", "Central", "Metro", "Coastal", "Valley", "Ridge", "Liberty", "Keystone",
)
_NOUNS = (
    "Tool", "Machine", "Supply", "Hardware", "Fastener", "Industrial", "Electric", "Plumbing", "Motor",
    "Fabrication", "Equipment", "Components", "Systems", "Builders", "Works", "Parts", "Engineering",
)
_SUFFIXES = ("Inc", "LLC", "Co", "Corp", "Ltd", "Group", "& Sons", "Partners")
_FIRST = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Mei",
    "Priya", "Ahmed", "Olga", "Kenji", "Fatima", "Lukas", "Sofia", "Noah", "Aisha", "Mateo",
)
_LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Kim", "Nguyen", "Patel", "Schmidt", "Novak", "Rossi", "Tanaka", "Okafor", "Larsen",
)
_AREA_CODES = ("212", "312", "415", "512", "617", "702", "713", "206", "303", "404", "503", "602", "214")
SEGMENTS = ("enterprise", "mid_market", "smb", "public_sector")
_TERMS = (("N30", 70), ("N60", 20), ("COD", 10))
_CATEGORIES = (
    ("BRG", "BEARING", "EA"), ("BLT", "BOLT HEX", "BX"), ("MTR", "MOTOR AC", "EA"), ("CBL", "CABLE CU", "M"),
    ("VLV", "VALVE BALL", "EA"), ("PMP", "PUMP CENTRIF", "EA"), ("GSK", "GASKET NBR", "BX"),
    ("FLT", "FILTER HYD", "EA"), ("PIP", "PIPE STEEL", "M"), ("LUB", "GREASE LITH", "KG"),
)
WAREHOUSES = (
    ("DAL", "DALLAS DC", "Dallas", "US"),
    ("CHI", "CHICAGO DC", "Chicago", "US"),
    ("NJ1", "NEWARK DC", "Newark", "US"),
    ("RNO", "RENO DC", "Reno", "US"),
    ("ROT", "ROTTERDAM DC", "Rotterdam", "NL"),
    ("SIN", "SINGAPORE DC", "Singapore", "SG"),
)
INTERACTION_KINDS = ("call", "email", "ticket", "meeting")
_INTERACTION_SUBJECTS = {
    "call": ("Quarterly check-in", "Pricing question", "Delivery delay follow-up", "Renewal discussion"),
    "email": ("Quote request", "Invoice copy requested", "Catalogue update", "Order confirmation query"),
    "ticket": ("Damaged goods on arrival", "Wrong item shipped", "Portal login issue", "Credit note request"),
    "meeting": ("Annual business review", "Site visit", "New product line briefing", "Contract negotiation"),
}
PO_STATUSES = ("SENT", "CONFIRMED", "PARTIAL", "RECEIVED", "CANCELLED")
SHIPMENT_CODES = ("PU", "IT", "OD", "DL", "EX")  # picked up, in transit, out for delivery, delivered, exception


def cyymmdd(d: date) -> int:
    """Encode a date the ERP's way: century digit (0 = 19xx, 1 = 20xx), then YYMMDD."""
    return (d.year // 100 - 19) * 1_000_000 + (d.year % 100) * 10_000 + d.month * 100 + d.day


@dataclass(frozen=True, slots=True)
class Sizes:
    customers: int = 5_000
    orders: int = 50_000
    items: int = 500
    warehouses: int = 4
    vendors: int = 20
    carriers: int = 4  # of the vendors, how many are logistics providers
    purchase_orders: int = 2_000


@dataclass(frozen=True, slots=True)
class Customer:
    erp_number: str  # six digits, e.g. "100001"
    name: str
    phone_digits: str  # as the ERP keeps it: digits only, sometimes with a leading 1, sometimes empty
    credit_limit_cents: int
    balance_cents: int
    terms: str
    status: str  # 'A' active, 'I' inactive
    currency: str
    crm_id: str
    crm_erp_number: str | None  # what the CRM has on record: usually erp_number, sometimes not
    contact_first: str
    contact_last: str
    email: str  # mixed case, as people type it
    crm_phone: str | None  # formatted for humans
    segment: str
    account_manager: int  # index into World.account_managers
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Item:
    number: str  # e.g. "BRG00042"
    description: str
    uom: str
    main_vendor: str
    list_price_cents: int


@dataclass(frozen=True, slots=True)
class StockBalance:
    item: str
    warehouse: str
    on_hand: int
    allocated: int


@dataclass(frozen=True, slots=True)
class Vendor:
    number: str  # "V00001"
    name: str
    kind: str  # 'S' supplier, 'C' carrier
    country: str


@dataclass(frozen=True, slots=True)
class OrderLine:
    order: int
    line: int
    item: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True, slots=True)
class Order:
    number: int
    customer: str  # erp_number
    placed: date
    status: str
    currency: str
    warehouse: str
    lines: tuple[OrderLine, ...]

    @property
    def total_cents(self) -> int:
        return sum(line.quantity * line.unit_price_cents for line in self.lines)


@dataclass(frozen=True, slots=True)
class Interaction:
    id: str
    customer: str  # crm_id
    kind: str
    occurred_at: datetime
    subject: str
    agent: str


@dataclass(frozen=True, slots=True)
class Offer:
    supplier: str
    item: str
    unit_price: str  # decimal string, as the supplier API speaks
    currency: str
    lead_time_days: int
    available_qty: int
    valid_until: date


@dataclass(frozen=True, slots=True)
class PurchaseOrderLine:
    item: str
    quantity: int
    unit_price: str


@dataclass(frozen=True, slots=True)
class PurchaseOrder:
    id: str
    supplier: str
    status: str
    created: date
    expected: date
    currency: str
    lines: tuple[PurchaseOrderLine, ...]


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    at: datetime
    code: str
    location: str


@dataclass(frozen=True, slots=True)
class Shipment:
    tracking_number: str
    carrier: str  # vendor number
    order: int
    status: str
    eta: datetime
    events: tuple[TrackingEvent, ...]


@dataclass(frozen=True, slots=True)
class AccountManager:
    id: str
    name: str
    email: str


@dataclass
class World:
    """All sample data for one seed. Cheap to build; each part is generated on first use."""

    seed: int = 42
    sizes: Sizes = field(default_factory=Sizes)

    def _rng(self, domain: str) -> random.Random:
        digest = hashlib.sha256(f"{self.seed}:{domain}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    @cached_property
    def account_managers(self) -> tuple[AccountManager, ...]:
        rng = self._rng("account_managers")
        managers = []
        for i in range(12):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            managers.append(AccountManager(
                id=f"am-{i + 1:03d}", name=f"{first} {last}", email=f"{first}.{last}@example-company.com".lower(),
            ))
        return tuple(managers)

    @cached_property
    def vendors(self) -> tuple[Vendor, ...]:
        rng = self._rng("vendors")
        vendors = []
        suppliers = self.sizes.vendors - self.sizes.carriers
        for i in range(self.sizes.vendors):
            kind = "S" if i < suppliers else "C"
            base = f"{rng.choice(_PREFIXES)} {rng.choice(('Logistics', 'Freight', 'Express'))}" if kind == "C" \
                else f"{rng.choice(_PREFIXES)} {rng.choice(_NOUNS)} {rng.choice(('Mfg', 'Industries', 'Supply'))}"
            vendors.append(Vendor(number=f"V{i + 1:05d}", name=base, kind=kind,
                                  country=rng.choice(("US", "US", "DE", "CN", "MX"))))
        return tuple(vendors)

    @cached_property
    def suppliers(self) -> tuple[Vendor, ...]:
        return tuple(v for v in self.vendors if v.kind == "S")

    @cached_property
    def carriers(self) -> tuple[Vendor, ...]:
        return tuple(v for v in self.vendors if v.kind == "C")

    @cached_property
    def warehouses(self) -> tuple[tuple[str, str, str, str], ...]:
        return WAREHOUSES[: self.sizes.warehouses]

    @cached_property
    def customers(self) -> tuple[Customer, ...]:
        rng = self._rng("customers")
        out = []
        for i in range(self.sizes.customers):
            number = str(100_001 + i)
            name = f"{rng.choice(_PREFIXES)} {rng.choice(_NOUNS)} {rng.choice(_SUFFIXES)}"
            area, exchange, line = rng.choice(_AREA_CODES), rng.randint(200, 989), rng.randint(0, 9999)
            digits = f"{area}{exchange}{line:04d}"
            roll = rng.random()
            phone_digits = "" if roll < 0.03 else ("1" + digits if roll < 0.15 else digits)
            limit = rng.choice((500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000))
            terms = rng.choices([t for t, _ in _TERMS], weights=[w for _, w in _TERMS])[0]
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            domain = "".join(ch for ch in name.split()[0] + name.split()[1] if ch.isalpha()) + ".com"
            email = "".join(ch.upper() if rng.random() < 0.2 else ch for ch in f"{first}.{last}@{domain}")
            fmt = rng.random()
            if not digits or fmt < 0.05:
                crm_phone = None
            elif fmt < 0.5:
                crm_phone = f"+1 ({area}) {exchange}-{line:04d}"
            elif fmt < 0.8:
                crm_phone = f"{area}.{exchange}.{line:04d}"
            else:
                crm_phone = f"1-{area}-{exchange}-{line:04d}"
            xref = rng.random()
            if xref < 0.02:
                crm_erp: str | None = None
            elif xref < 0.05:
                crm_erp = rng.choice((f"C-{number}", f"0{number}", f"{number[:3]} {number[3:]}", f" {number} "))
            else:
                crm_erp = number
            out.append(Customer(
                erp_number=number, name=name, phone_digits=phone_digits, credit_limit_cents=limit,
                balance_cents=rng.randint(0, int(limit * 0.9)), terms=terms,
                status="I" if rng.random() < 0.08 else "A", currency="EUR" if rng.random() < 0.15 else "USD",
                crm_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), crm_erp_number=crm_erp,
                contact_first=first, contact_last=last, email=email, crm_phone=crm_phone,
                segment=rng.choice(SEGMENTS), account_manager=rng.randrange(12),
                created_at=datetime(2015, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 5_000_000)),
            ))
        return tuple(out)

    @cached_property
    def manual_links(self) -> tuple[tuple[str, str], ...]:
        """(crm_id, erp_number) pairs a data steward maintained for CRM records with no ERP number.

        About 60% of those records are linked; the rest stay unlinked, as in real life.
        """
        rng = self._rng("manual_links")
        return tuple((c.crm_id, c.erp_number) for c in self.customers
                     if c.crm_erp_number is None and rng.random() < 0.6)

    @cached_property
    def items(self) -> tuple[Item, ...]:
        rng = self._rng("items")
        out = []
        for i in range(self.sizes.items):
            code, desc, uom = _CATEGORIES[i % len(_CATEGORIES)]
            spec = f"{rng.randint(10, 9999)}" + rng.choice(("", " 2RS", " SS", " HD", " ZP"))
            out.append(Item(
                number=f"{code}{i + 1:05d}", description=f"{desc} {spec}", uom=uom,
                main_vendor=rng.choice(self.suppliers).number, list_price_cents=rng.randint(150, 250_000),
            ))
        return tuple(out)

    @cached_property
    def stock(self) -> tuple[StockBalance, ...]:
        rng = self._rng("stock")
        out = []
        for item in self.items:
            for wh in rng.sample([w[0] for w in self.warehouses], k=rng.randint(min(2, len(self.warehouses)),
                                                                                   len(self.warehouses))):
                on_hand = rng.randint(0, 500)
                out.append(StockBalance(item=item.number, warehouse=wh, on_hand=on_hand,
                                        allocated=rng.randint(0, on_hand)))
        return tuple(out)

    def orders(self) -> Iterator[Order]:
        """Orders in number order; a generator, because the ERP seeder streams them in batches."""
        rng = self._rng("orders")
        customers, items = self.customers, self.items
        warehouses = [w[0] for w in self.warehouses]
        span_days = 3 * 365
        for i in range(self.sizes.orders):
            number = 5_000_001 + i
            customer = customers[rng.randrange(len(customers))]
            # Order numbers rise with time, as they do in the ERP.
            placed = REFERENCE_DATE - timedelta(days=span_days - (i * span_days) // max(self.sizes.orders, 1))
            age = (REFERENCE_DATE - placed).days
            roll = rng.random()
            if roll < 0.04:
                status = "C"
            elif age > 45:
                status = "I"
            elif age > 10:
                status = rng.choice("SSI")
            else:
                status = rng.choice("OOAS")
            count = rng.choices((1, 2, 3, 4, 5), weights=(15, 20, 30, 20, 15))[0]
            picked = rng.sample(range(len(items)), k=count)
            lines = tuple(OrderLine(
                order=number, line=n + 1, item=items[idx].number, quantity=rng.randint(1, 50),
                unit_price_cents=int(items[idx].list_price_cents * rng.choice((1.0, 1.0, 0.95, 0.9))),
            ) for n, idx in enumerate(picked))
            yield Order(number=number, customer=customer.erp_number, placed=placed, status=status,
                        currency=customer.currency, warehouse=rng.choice(warehouses), lines=lines)

    @cached_property
    def interactions(self) -> dict[str, tuple[Interaction, ...]]:
        """Interactions per CRM customer id, newest first."""
        rng = self._rng("interactions")
        out: dict[str, tuple[Interaction, ...]] = {}
        base = datetime.combine(REFERENCE_DATE, datetime.min.time(), tzinfo=UTC)
        for c in self.customers:
            items = []
            for _ in range(rng.randint(0, 14)):
                kind = rng.choice(INTERACTION_KINDS)
                items.append(Interaction(
                    id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), customer=c.crm_id, kind=kind,
                    occurred_at=base - timedelta(minutes=rng.randint(60, 2 * 365 * 24 * 60)),
                    subject=rng.choice(_INTERACTION_SUBJECTS[kind]),
                    agent=self.account_managers[c.account_manager].name,
                ))
            items.sort(key=lambda x: (x.occurred_at, x.id), reverse=True)
            out[c.crm_id] = tuple(items)
        return out

    @cached_property
    def offers(self) -> tuple[Offer, ...]:
        rng = self._rng("offers")
        out = []
        for item in self.items:
            others = [s.number for s in self.suppliers if s.number != item.main_vendor]
            for supplier in [item.main_vendor, *rng.sample(others, k=min(len(others), rng.randint(0, 2)))]:
                price = item.list_price_cents * rng.uniform(0.45, 0.7) / 100
                out.append(Offer(
                    supplier=supplier, item=item.number, unit_price=f"{price:.2f}", currency="USD",
                    lead_time_days=rng.choice((2, 3, 5, 7, 10, 14, 21, 30)), available_qty=rng.randint(0, 5000),
                    valid_until=REFERENCE_DATE + timedelta(days=rng.randint(7, 180)),
                ))
        return tuple(out)

    @cached_property
    def purchase_orders(self) -> tuple[PurchaseOrder, ...]:
        rng = self._rng("purchase_orders")
        offers_by_supplier: dict[str, list[Offer]] = {}
        for offer in self.offers:
            offers_by_supplier.setdefault(offer.supplier, []).append(offer)
        suppliers = sorted(offers_by_supplier)
        out = []
        for i in range(self.sizes.purchase_orders):
            supplier = rng.choice(suppliers)
            created = REFERENCE_DATE - timedelta(days=rng.randint(0, 365))
            age = (REFERENCE_DATE - created).days
            status = "RECEIVED" if age > 60 else rng.choice(PO_STATUSES)
            picks = rng.sample(offers_by_supplier[supplier], k=min(len(offers_by_supplier[supplier]),
                                                                  rng.randint(1, 4)))
            out.append(PurchaseOrder(
                id=f"PO-{created.year}-{i + 1:06d}", supplier=supplier, status=status, created=created,
                expected=created + timedelta(days=rng.randint(3, 30)), currency="USD",
                lines=tuple(PurchaseOrderLine(item=o.item, quantity=rng.randint(10, 500), unit_price=o.unit_price)
                            for o in picks),
            ))
        return tuple(out)

    @cached_property
    def shipments(self) -> tuple[Shipment, ...]:
        """Shipments the logistics providers carry: shipped or invoiced orders of the last year."""
        rng = self._rng("shipments")
        cities = ("Dallas, TX", "Memphis, TN", "Louisville, KY", "Chicago, IL", "Newark, NJ", "Reno, NV",
                  "Denver, CO", "Atlanta, GA", "Phoenix, AZ", "Seattle, WA")
        horizon = REFERENCE_DATE - timedelta(days=365)
        out = []
        for order in self.orders():
            if order.status not in ("S", "I") or order.placed < horizon:
                continue
            carrier = rng.choice(self.carriers)
            start = datetime.combine(order.placed, datetime.min.time(), tzinfo=UTC) + timedelta(
                hours=rng.randint(8, 48))
            steps = ["PU", "IT", "IT", "OD", "DL"]
            if order.status == "S" and (REFERENCE_DATE - order.placed).days < 20:
                steps = steps[: rng.randint(1, 4)]
            if rng.random() < 0.03:
                steps = [*steps[:2], "EX"]
            events, at = [], start
            for code in steps:
                events.append(TrackingEvent(at=at, code=code, location=rng.choice(cities)))
                at += timedelta(hours=rng.randint(4, 30))
            out.append(Shipment(
                tracking_number=f"{carrier.number[-2:]}{rng.getrandbits(40):012X}", carrier=carrier.number,
                order=order.number, status=steps[-1], eta=start + timedelta(days=rng.randint(2, 6)),
                events=tuple(events),
            ))
        return tuple(out)
