"""The moto server process of the embedded run: `python -m embedded.moto_process --host H --port P`.

It prints one JSON line on stdout, `{"port": N}` once it listens or `{"error": ...}` when it
cannot, and exits when its parent closes stdin, so a crashed run never leaves a server behind.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import socket
import sys
import threading
from typing import Any

from moto.awslambda.models import LambdaBackend
from moto.core.base_backend import BackendDict
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing.ast_nodes import UpdateExpression  # type: ignore[attr-defined]
from moto.dynamodb.parsing.validators import ActionCountValidator
from moto.dynamodb.responses import DynamoHandler
from moto.events.models import Rule
from moto.kinesis.models import Shard, Stream
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.sqs.models import sqs_backends
from werkzeug.serving import make_server


def _disable_moto_stream_triggers() -> None:
    """Leave Kinesis and DynamoDB stream event-source mappings to the emulator.

    moto invokes a mapped function itself on every PutRecord and on every write to a table
    with a mapped stream, in Docker: one container per record where Docker exists, an error
    per record where it does not (and, for a table, a truthy result empties the stream moto
    keeps). The emulator is the event source of the local run, so moto only stores the
    mappings and the stream records.
    """

    def store_only(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    LambdaBackend.send_kinesis_message = store_only  # type: ignore[method-assign]
    LambdaBackend.send_dynamodb_items = store_only  # type: ignore[method-assign,assignment]


# Where moto's EventBridge leaves the events of rules that target a Lambda function: moto runs
# such a target in Docker (it raises without), so the local stack keeps each delivery, as
# {"function_arn", "event"}, on this queue of the rule's account and region; the local run
# invokes the function in-process with it (embedded/async_invocations.py), as EventBridge's
# asynchronous invocation would.
ASYNC_INVOCATIONS_QUEUE = "streamscore-local-async-invocations"


def _queue_lambda_targets() -> None:
    """Rules' Lambda targets: the event goes to ASYNC_INVOCATIONS_QUEUE; other targets as moto
    delivers them."""
    deliver = Rule.send_to_targets
    lock = threading.Lock()

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        functions = [t for t in self.targets if ":lambda:" in t["Arn"]]
        if not functions:
            deliver(self, original_event, transform_input)
            return
        with lock:  # the rule's targets, narrowed for moto's own delivery
            targets = self.targets
            self.targets = [t for t in targets if t not in functions]
            try:
                deliver(self, original_event, transform_input)
            finally:
                self.targets = targets
        if not self.event_pattern.matches_event(original_event):
            return
        sqs = sqs_backends[self.account_id][self.region_name]
        sqs.create_queue(ASYNC_INVOCATIONS_QUEUE)
        for target in functions:
            body = {"function_arn": target["Arn"], "event": original_event}
            sqs.send_message(ASYNC_INVOCATIONS_QUEUE, json.dumps(body, default=str))

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]


def _memoize_backend_lookup() -> None:
    """Find a request's moto backend once per host, not per request.

    moto lists its package directory and tries every service's URL patterns on each request,
    under one lock for all request threads: a third of its time in the local run (sampled).
    The answer depends on the host name alone.
    """
    lookup = DomainDispatcherApplication.get_backend_for_host
    known: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in known:
            known[host] = lookup(self, host)
        return known[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


def _constant_time_stream_appends() -> None:
    """Append to a shard without copying its keys: moto takes the last sequence number from a list
    of all of them, once per record (quadratic in the records of a run)."""

    def get_max_sequence_number(self: Any) -> int:
        return next(reversed(self.records)) if self.records else 0

    Shard.get_max_sequence_number = get_max_sequence_number  # type: ignore[method-assign]


def _remember_account_backends() -> None:
    """Create a service's per-account backend once, not check for it under a global lock per call.

    moto copies the accounts into a list and compares the registry of every service on each
    backend access (6 % of its CPU here). Nothing in the local run resets moto's backends.
    """
    create = BackendDict._create_account_specific_backend
    created: set[tuple[int, str]] = set()

    def create_once(self: Any, account_id: str) -> None:
        key = (id(self), account_id)
        if key not in created:
            create(self, account_id)
            created.add(key)

    BackendDict._create_account_specific_backend = create_once  # type: ignore[method-assign]


# DynamoDB's data-plane answers: plain dicts of wire-format attribute values once moto built them.
_ITEM_ACTIONS = frozenset(
    {
        "BatchGetItem",
        "BatchWriteItem",
        "GetItem",
        "PutItem",
        "DeleteItem",
        "UpdateItem",
        "Query",
        "Scan",
    }
)


def _dump_dynamodb_items_directly() -> None:
    """Answer DynamoDB item calls with json.dumps of moto's result instead of its model walk.

    moto serialises every response by walking the service model attribute by attribute; for
    the item calls the handlers make by the thousand that was 40 % of the server's CPU in the
    local run (sampled), and the result is already the wire format (same JSON, compared).
    Anything else, errors included, takes moto's own path.
    """
    generic = DynamoHandler.serialized

    def serialized(self: Any, action_result: Any) -> Any:
        result = action_result.result
        if type(result) is dict and self._get_action() in _ITEM_ACTIONS:
            try:
                body = json.dumps(result)
            except (TypeError, ValueError):
                return generic(self, action_result)
            return (
                200,
                {"Content-Type": "application/x-amz-json-1.0", **self.response_headers},
                body,
            )
        return generic(self, action_result)

    DynamoHandler.serialized = serialized  # type: ignore[method-assign]


_in_transaction = threading.local()


def _transactions_roll_back_their_items() -> None:
    """Roll a cancelled TransactWriteItems back by the items it touched, not by copies of tables.

    moto deep-copies every table a transaction names before running it, to put the copies
    back if it is cancelled: each call costs the size of the tables, and the local run's
    prediction and quarantine writes are transactions (seconds a call, gigabytes over a run).
    Here the tables are not copied while a transaction runs in this thread; the items it
    touches are copied before it and put back when moto cancels it.
    """

    def copy_table(self: Any, memo: dict[int, Any]) -> Any:
        if getattr(_in_transaction, "active", False):
            return self
        copied = object.__new__(type(self))
        memo[id(self)] = copied
        for name, value in self.__dict__.items():
            setattr(copied, name, copy.deepcopy(value, memo))
        return copied

    Table.__deepcopy__ = copy_table  # type: ignore[attr-defined]
    run = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        before = []
        for action in transact_items:
            op: Any = next(iter(action.values()), {})
            table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            attributes = (op.get("Item") or op.get("Key")) if table is not None else None
            if table is None or not attributes:
                continue
            key = {
                name: attributes[name]
                for name in (table.hash_key_attr, table.range_key_attr)
                if name is not None and name in attributes
            }
            current = self.get_item(table.name, key)
            before.append((table.name, key, current.to_json()["Attributes"] if current else None))
        _in_transaction.active = True
        try:
            run(self, transact_items)
        except Exception:
            for table_name, key, attributes in reversed(before):
                if attributes is None:
                    self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, copy.deepcopy(attributes))
            raise
        finally:
            _in_transaction.active = False

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


_DYNAMODB_ITEM_CALLS = (
    "batch_get_item",
    "batch_write_item",
    "delete_item",
    "get_item",
    "put_item",
    "query",
    "scan",
    "transact_get_items",
    "transact_write_items",
    "update_item",
)


def _serialize_dynamodb_item_calls() -> None:
    """Run one DynamoDB item call at a time, so each is atomic as DynamoDB's are.

    The server is threaded (the functions' containers call it side by side) and moto's item
    calls are not atomic across threads: an update builds a new item in steps, and a
    transaction cancelled in one thread puts back the items it touched as they were when it
    read them, possibly half-built by another thread's update. The local run once ended with a
    count item holding its counts but not the WindowIndex keys its every update sets (1 of
    530), which DynamoDB cannot produce. One lock around the item calls (the GIL runs them one
    at a time anyway) removes the interleaving.
    """
    lock = threading.RLock()

    def serialized(method: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(self, *args, **kwargs)

        return call

    for name in _DYNAMODB_ITEM_CALLS:
        setattr(DynamoDBBackend, name, serialized(getattr(DynamoDBBackend, name)))


def _count_update_clauses_once() -> None:
    """Check an UpdateExpression's clause counts once, at its root.

    moto checks them at every nested UpdateExpression node, each check walking the node's
    whole subtree: quadratic in the clauses. The count items' updates ADD one attribute per
    histogram bin (dozens of clauses), which made this check 29 % of the server's CPU in the
    local run (sampled). The root holds every clause, so one check there is the same check.
    """
    verify = ActionCountValidator.verify_action_counts

    def traverse(self: Any, node: Any) -> Any:
        return verify(self, node) if isinstance(node, UpdateExpression) else node

    ActionCountValidator.traverse = traverse


def _route_records_to_open_shards() -> None:
    """Route a put to the OPEN shard whose hash-key range holds its key, as Kinesis does.

    moto 5.2.5 keeps routing PutRecord(s) to a closed parent shard after SplitShard and
    MergeShards: its hash-key lookup does not skip closed shards. Kinesis hashes the partition
    key with MD5 to a 128-bit integer (or takes the explicit hash key) and writes to the open
    shard whose range holds it (Kinesis Data Streams API Reference, PutRecord: "Kinesis Data
    Streams uses the partition key as input to a hash function that maps the partition key and
    associated data to a specific shard").
    """

    def open_shard_for_key(
        self: Any, partition_key: str, explicit_hash_key: str | None
    ) -> Shard | None:
        if explicit_hash_key:
            key = int(explicit_hash_key)
        else:
            key = int(hashlib.md5(partition_key.encode("utf-8")).hexdigest(), 16)
        for shard in self.shards.values():
            if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
                return shard
        return None

    Stream.get_shard_for_key = open_shard_for_key  # type: ignore[method-assign]


def _exit_with_parent() -> None:
    sys.stdin.read()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    _disable_moto_stream_triggers()
    _queue_lambda_targets()
    _memoize_backend_lookup()
    _dump_dynamodb_items_directly()
    _constant_time_stream_appends()
    _remember_account_backends()
    _transactions_roll_back_their_items()
    _serialize_dynamodb_item_calls()
    _count_update_clauses_once()
    _route_records_to_open_shards()
    # The socket is bound here rather than by werkzeug, which exits on a bind error with
    # nothing but a message on stderr; the parent reads the reason from stdout.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.host, args.port))
        listener.listen(128)
    except OSError as error:
        print(json.dumps({"error": error.strerror or str(error), "errno": error.errno}), flush=True)
        sys.exit(2)
    port = listener.getsockname()[1]
    server = make_server(
        args.host,
        port,
        DomainDispatcherApplication(create_backend_app),
        threaded=True,
        request_handler=MotoRequestHandler,
        fd=listener.fileno(),
    )
    # moto puts its own port into the ARNs and URLs it builds (e.g. SQS queue URLs).
    os.environ["MOTO_PORT"] = str(port)
    print(json.dumps({"port": port}), flush=True)
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
