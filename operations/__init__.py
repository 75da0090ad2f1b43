"""Business operations: writes that span the ERP, the CRM and partner systems, run as sagas.

A mutation resolver turns its input into a command and hands it to `Operations`; each operation is a
saga of named steps (operations/saga.py) whose progress is kept in the gateway's database, so a crash,
a restart or an unavailable system never leaves a write half done without a record of what is left.
"""
