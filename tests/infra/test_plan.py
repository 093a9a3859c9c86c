"""The plan is a pure difference of declared and current resources, and it is plain data."""

from __future__ import annotations

from sluice.infra.plan import Current, Declared, ObservedTable, Plan, Resource, diff, explain

WAREHOUSE = Resource(kind="warehouse", name="warehouse", attributes={"path": "/p/warehouse"})
NAMESPACE = Resource(kind="namespace", name="raw")
JOB = Resource(kind="job", name="etl", attributes={"timeout_minutes": "30", "tables": "all"})


def declared(*resources: Resource, **kwargs: object) -> Declared:
    return Declared(resources={r.address: r for r in resources}, **kwargs)


def current(*resources: Resource, state: tuple[Resource, ...] = (), **kwargs: object) -> Current:
    return Current(
        resources={r.address: r for r in resources},
        tables=kwargs.pop("tables", {}),
        state={r.address: r for r in state},
        lineage="abc" if state else None,
        serial=7 if state else 0,
    )


def test_everything_missing_is_created_in_dependency_order() -> None:
    plan = diff(declared(JOB, NAMESPACE, WAREHOUSE), current(), project="/p")
    assert [(s.action, s.address) for s in plan.steps] == [
        ("create", "warehouse.warehouse"),
        ("create", "namespace.raw"),
        ("create", "job.etl"),
    ]
    assert plan.counts == (3, 0, 0)
    assert explain(plan)[-1] == "Plan: 3 to add, 0 to change, 0 to destroy."


def test_a_changed_attribute_is_an_update_with_its_diff() -> None:
    longer = JOB.model_copy(update={"attributes": {**JOB.attributes, "timeout_minutes": "45"}})
    plan = diff(declared(longer), current(JOB, state=(JOB,)), project="/p")
    assert [(s.action, s.before, s.after) for s in plan.steps] == [
        ("update", JOB.attributes, longer.attributes)
    ]
    assert (plan.lineage, plan.serial) == ("abc", 7)
    assert '      ~ timeout_minutes: "30" -> "45"' in explain(plan)


def test_a_moved_warehouse_is_replaced_and_counts_as_add_and_destroy() -> None:
    moved = Resource(kind="warehouse", name="warehouse", attributes={"path": "/p/lake"})
    plan = diff(declared(moved), current(WAREHOUSE, state=(WAREHOUSE,)), project="/p")
    assert [s.action for s in plan.steps] == ["replace"]
    lines = explain(plan)
    assert lines[2].startswith("  -/+ warehouse  # forces replacement")
    assert '~ path: "/p/warehouse" -> "/p/lake"  (forces replacement)' in lines[3]
    assert lines[-1] == "Plan: 1 to add, 0 to change, 1 to destroy."


def test_a_resource_no_longer_declared_is_destroyed_and_drift_is_named() -> None:
    old = Resource(kind="namespace", name="staging")
    plan = diff(declared(NAMESPACE), current(old, state=(old, NAMESPACE)), project="/p")
    assert [(s.action, s.address, s.reason) for s in plan.steps] == [
        ("create", "namespace.raw", "missing: removed outside Sluice"),
        ("delete", "namespace.staging", "no longer declared"),
    ]
    assert explain(plan)[-1] == "Plan: 1 to add, 0 to change, 1 to destroy."


def test_tables_are_restored_updated_or_dropped_but_never_invented() -> None:
    keep = {"write.metadata.previous-versions-max": "10"}
    tables = {
        "raw.orders": ObservedTable(
            "raw.orders", True, {"write.metadata.previous-versions-max": "3"}
        ),
        "raw.customers": ObservedTable("raw.customers", False, metadata_location="file:///m.json"),
        "raw.old": ObservedTable("raw.old", True, keep, written_by_sluice=True),
        "raw.crawled": ObservedTable("raw.crawled", True, keep, written_by_sluice=False),
    }
    want = declared(
        NAMESPACE,
        tables=frozenset({"raw.orders", "raw.customers", "raw.crawled", "raw.products"}),
        table_attributes=keep,
    )
    plan = diff(want, current(NAMESPACE, state=(NAMESPACE,), tables=tables), project="/p")
    assert [(s.action, s.name, s.metadata_location) for s in plan.steps] == [
        ("create", "raw.customers", "file:///m.json"),
        ("update", "raw.orders", None),
        ("delete", "raw.old", None),
    ]
    assert plan.pending_tables == ("raw.products",)


def test_a_plan_survives_a_json_round_trip() -> None:
    plan = diff(declared(JOB, NAMESPACE), current(), project="/p")
    again = Plan.model_validate_json(plan.model_dump_json())
    assert again == plan
    assert again.steps[0].after == {}
    assert explain(again) == explain(plan)
