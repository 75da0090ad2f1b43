"""The legacy ERP's tables, as the ERP defines them: fixed-width CHAR, integer cents, CYYMMDD dates."""

from __future__ import annotations

from sqlalchemy import CHAR, Column, Index, Integer, MetaData, PrimaryKeyConstraint, Table, Text

metadata = MetaData()

CUSMAS = Table(
    "CUSMAS", metadata,
    Column("CMCUNO", CHAR(8), primary_key=True),
    Column("CMNAME", CHAR(40), nullable=False),
    Column("CMPHON", CHAR(15), nullable=False),
    Column("CMCRLM", Integer, nullable=False),
    Column("CMBALD", Integer, nullable=False),
    Column("CMTERM", CHAR(3), nullable=False),
    Column("CMSTAT", CHAR(1), nullable=False),
    Column("CMCURR", CHAR(3), nullable=False),
)

ORDHDR = Table(
    "ORDHDR", metadata,
    Column("OHORNO", Integer, primary_key=True, autoincrement=False),
    Column("OHCUNO", CHAR(8), nullable=False),
    Column("OHORDT", Integer, nullable=False),
    Column("OHSTAT", CHAR(1), nullable=False),
    Column("OHTOTL", Integer, nullable=False),
    Column("OHCURR", CHAR(3), nullable=False),
    Column("OHWHSE", CHAR(3), nullable=False),
    Index("ORDHDR_CUST", "OHCUNO", "OHORDT"),
    Index("ORDHDR_DATE", "OHORDT"),
)

ORDDTL = Table(
    "ORDDTL", metadata,
    Column("ODORNO", Integer, nullable=False, autoincrement=False),
    Column("ODLINE", Integer, nullable=False, autoincrement=False),
    Column("ODITNO", CHAR(15), nullable=False),
    Column("ODQORD", Integer, nullable=False),
    Column("ODUPRC", Integer, nullable=False),
    PrimaryKeyConstraint("ODORNO", "ODLINE"),
    Index("ORDDTL_ORDER", "ODORNO"),
)

ITMMAS = Table(
    "ITMMAS", metadata,
    Column("IMITNO", CHAR(15), primary_key=True),
    Column("IMDESC", CHAR(40), nullable=False),
    Column("IMUOM", CHAR(2), nullable=False),
    Column("IMVNNO", CHAR(6), nullable=False),
    Column("IMLPRC", Integer, nullable=False),
)

ITMBAL = Table(
    "ITMBAL", metadata,
    Column("IBITNO", CHAR(15), nullable=False),
    Column("IBWHSE", CHAR(3), nullable=False),
    Column("IBQOH", Integer, nullable=False),
    Column("IBQAL", Integer, nullable=False),
    PrimaryKeyConstraint("IBITNO", "IBWHSE"),
    Index("ITMBAL_ITEM", "IBITNO"),
)

WHSMAS = Table(
    "WHSMAS", metadata,
    Column("WHWHSE", CHAR(3), primary_key=True),
    Column("WHDESC", CHAR(30), nullable=False),
    Column("WHCITY", CHAR(30), nullable=False),
    Column("WHCTRY", CHAR(2), nullable=False),
)

VENMAS = Table(
    "VENMAS", metadata,
    Column("VNVNNO", CHAR(6), primary_key=True),
    Column("VNNAME", CHAR(40), nullable=False),
    Column("VNTYPE", CHAR(1), nullable=False),
    Column("VNCTRY", CHAR(2), nullable=False),
)

# The ERP's number ranges: the next free number per range ('ORDHDR' for order numbers), taken and
# incremented under the row's lock by whatever creates a record of that range.
NUMCTL = Table(
    "NUMCTL", metadata,
    Column("NCKEY", CHAR(8), primary_key=True),
    Column("NCNEXT", Integer, nullable=False),
)

# Not part of the ERP: records which world a demo database was seeded with.
DEMOSEED = Table(
    "DEMOSEED", metadata,
    Column("SEED", Integer, nullable=False),
    Column("SIZES", Text, nullable=False),
)
