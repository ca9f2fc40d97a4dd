"""The tracking tables, in the delivery log's file STORE/deliveries.sqlite
(component "tracking" of audience.runtime.db.migrate): the links each
delivery was sent with, the hits on them, and the suppression list."""

from __future__ import annotations

import sqlite_utils

from audience.runtime.db import Migration


def _m0001_tracking(db: sqlite_utils.Database) -> None:
    # what a delivery was sent with: a click's target is read here, never from the request
    db.execute(
        """create table delivery_links (
            delivery_id integer not null,
            idx integer not null,
            url text not null,
            text text not null,
            hidden integer not null default 0,
            primary key (delivery_id, idx)
        ) without rowid"""
    )
    # every recorded hit; the bot rules read a delivery's recent ones
    db.execute(
        """create table tracking_hits (
            id integer primary key,
            delivery_id integer not null,
            kind text not null,         -- click, open, unsubscribe
            link_idx integer,
            ts_ms integer not null,
            bot integer not null
        )"""
    )
    db.execute("create index tracking_hits_delivery on tracking_hits (delivery_id, ts_ms)")
    # the events of hits, committed with the hit and ingested into their node
    # shortly after (outbox.py), so the visitor's answer never waits for an ingest
    db.execute(
        """create table tracking_outbox (
            id integer primary key,
            node text not null,
            event text not null         -- JSON, with its own unique event id
        )"""
    )
    db.execute(
        """create table suppressions (
            email_norm text primary key,
            email text not null,
            reason text not null,       -- unsubscribed, manual, hard_bounce, complaint
            source text,                -- the delivery's source (unsubscribed) or a note
            delivery_id integer,
            created_ms integer not null
        ) without rowid"""
    )


def _m0002_inbound(db: sqlite_utils.Database) -> None:
    # what the inbound receiver or an import could not use, and why (docs/bounces.md)
    db.execute(
        """create table inbound_rejected (
            id integer primary key,
            received_ms integer not null,
            origin text not null,       -- "smtp" or the file (and its message number)
            reason text not null,       -- unknown_delivery, not_a_report, malformed, ...
            detail text not null,
            mail_from text,
            rcpt_to text,
            size integer not null,
            subject text,
            message_id text
        )"""
    )


MIGRATIONS: list[Migration] = [
    (1, "tracking", _m0001_tracking),
    (2, "inbound_rejected", _m0002_inbound),
]
