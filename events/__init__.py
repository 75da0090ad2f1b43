"""Change events: what changed in which system, and the bus that carries them to every gateway replica.

Producers (the outbox of business operations; later ERP change capture and the systems' webhooks) publish
`ChangeEvent`s; consumers (cache invalidation, GraphQL subscriptions) subscribe. The bus is in-process by
default (events/memory.py) and NATS JetStream when configured (events/nats.py), so that every replica sees
every event and a replica that restarts resumes where it was.
"""
