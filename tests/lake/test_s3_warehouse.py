"""An ``s3://`` warehouse against a real S3 server on the loopback: job runs, queries,
plan/apply/destroy, crawls of an ``s3://`` prefix, credentials that never reach a file, and
the errors a user meets.

The server is moto's, in server mode (``ThreadedMotoServer``): S3's HTTP API on 127.0.0.1,
spoken to by pyarrow, pyiceberg and DuckDB's httpfs exactly as they speak to AWS. It is the
only S3 implementation available offline here (no MinIO or AWS to reach), so it stands in for
them; each test gets its own bucket.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import duckdb
import pytest
from moto.server import ThreadedMotoServer

from sluice.core import TableName
from sluice.errors import ConfigError, LakeError
from sluice.project import Project
from tests.conftest import new_project, sluice_cli
from tests.jobs.helpers import lake_totals, source_totals

KEY, SECRET = "AKIASLUICETEST", "sluice-s3-secret-never-written"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, for this module's tests."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket; the credentials exported as AWS_* variables."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    name = f"lake-{secrets.token_hex(4)}"
    client(s3_endpoint).create_bucket(Bucket=name)
    return name


def client(endpoint: str) -> object:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )


def objects(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    pages = client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def project_file(folder: Path, text: str) -> Path:
    """A new project folder holding ``text`` as its sluice.yml."""
    folder.mkdir(parents=True)
    (folder / "sluice.yml").write_text(text, encoding="utf-8")
    return folder


def on_s3(project: Project, warehouse: str, endpoint: str) -> Project:
    """The project with its lake in ``warehouse`` on the server at ``endpoint``."""
    path = project.root / "sluice.yml"
    text = path.read_text(encoding="utf-8")
    lake = f"lake:\n  warehouse: {warehouse}\n  endpoint: {endpoint}\n  region: us-east-1\n"
    text = text.replace("lake:\n  warehouse: warehouse\n", lake)
    assert lake in text
    path.write_text(text, encoding="utf-8")
    return Project.open(project.root)


def test_a_job_writes_its_tables_to_s3_and_queries_read_them_there(
    tmp_path: Path, source_db: Callable[[int], Path], s3_endpoint: str, bucket: str
) -> None:
    project = on_s3(new_project(tmp_path, source_db(1)), f"s3://{bucket}/wh", s3_endpoint)
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error

    keys = objects(s3_endpoint, bucket)
    data = [k for k in keys if k.startswith("wh/gold.db/fact_orders/data/")]
    metadata = [k for k in keys if k.startswith("wh/gold.db/fact_orders/metadata/")]
    assert data == [f"wh/gold.db/fact_orders/data/{run.run_id}.parquet"]
    assert any(k.endswith(".metadata.json") for k in metadata)
    assert len({k.split("/")[2] for k in keys if k.startswith("wh/raw.db/")}) == 8
    assert not (project.root / "warehouse").exists()

    reopened = Project.open(project.root)
    location = reopened.describe("gold.fact_orders").info.location
    assert location == f"s3://{bucket}/wh/gold.db/fact_orders"
    assert lake_totals(reopened) == source_totals(project)

    second = Project.open(project.root).run_job("etl")
    assert second.state == "SUCCEEDED", second.error
    data = objects(s3_endpoint, bucket, "wh/gold.db/fact_orders/data/")
    assert f"wh/gold.db/fact_orders/data/{second.run_id}.parquet" in data
    assert list((project.state_dir / "staging/gold.db/fact_orders/data").glob("*.parquet")) == [
        project.state_dir / f"staging/gold.db/fact_orders/data/{second.run_id}.parquet"
    ]
    again = Project.open(project.root).query("SELECT count(*) AS n FROM raw.orderdetails")
    assert again.table.to_pylist() == [{"n": source_totals(project)[0]}]


def test_plan_apply_destroy_on_s3_never_write_the_credentials(
    tmp_path: Path, source_db: Callable[[int], Path], s3_endpoint: str, bucket: str
) -> None:
    project = on_s3(new_project(tmp_path, source_db(1)), f"s3://{bucket}/wh", s3_endpoint)
    planned = sluice_cli("plan", cwd=project.root)
    assert planned.returncode == 0, planned.stderr
    assert "+ warehouse" not in planned.stdout  # a warehouse in S3 exists with its bucket
    assert "+ namespace gold" in planned.stdout
    applied = sluice_cli("apply", "--auto-approve", cwd=project.root)
    assert applied.returncode == 0, applied.stderr
    started = sluice_cli("job", "start", "etl", "--wait", cwd=project.root)
    assert started.returncode == 0, started.stderr
    assert objects(s3_endpoint, bucket, "wh/gold.db/dim_date/data/")

    written = [p for p in project.root.rglob("*") if p.is_file()]
    assert written
    for path in written:
        content = path.read_bytes()
        assert SECRET.encode() not in content, path
        assert KEY.encode() not in content, path
    assert SECRET not in planned.stdout + applied.stdout + started.stdout + started.stderr

    destroyed = sluice_cli("destroy", "--auto-approve", cwd=project.root)
    assert destroyed.returncode == 0, destroyed.stderr
    # Only pyarrow's empty "folder" markers may remain: no data, no metadata.
    assert [k for k in objects(s3_endpoint, bucket, "wh/") if not k.endswith("/")] == []


def test_a_missing_bucket_or_missing_credentials_say_what_to_do(
    tmp_path: Path,
    s3_endpoint: str,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "sluice.yml").write_text(
        f"name: lab\nlake:\n  warehouse: s3://no-such-bucket/wh\n  endpoint: {s3_endpoint}\n",
        encoding="utf-8",
    )
    planned = sluice_cli("plan", cwd=tmp_path)
    assert planned.returncode == 1
    assert planned.stderr.strip().splitlines() == [
        f"Error: Bucket no-such-bucket of the warehouse s3://no-such-bucket/wh does not exist "
        f"at {s3_endpoint}. Create the bucket, or fix lake.warehouse / lake.endpoint in sluice.yml."
    ]
    with pytest.raises(LakeError, match="Bucket no-such-bucket"):
        Project.open(tmp_path).plan()

    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    no_secret = sluice_cli("plan", cwd=tmp_path)
    assert no_secret.returncode == 2
    assert no_secret.stderr.strip().splitlines() == [
        "Error: The warehouse s3://no-such-bucket/wh needs S3 credentials: "
        "AWS_SECRET_ACCESS_KEY is not set (looked in the environment). "
        "export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... before running sluice."
    ]
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY"):
        Project.open(tmp_path).plan()


@pytest.mark.servers
def test_two_projects_on_one_postgres_catalog_and_one_bucket_share_their_tables(
    tmp_path: Path,
    source_db: Callable[[int], Path],
    s3_endpoint: str,
    bucket: str,
    catalog_url: str,
) -> None:
    writer = new_project(tmp_path / "a", source_db(1))
    config = writer.root / "sluice.yml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "url: sqlite:///.sluice/catalog.db", f"url: {catalog_url}"
        ),
        encoding="utf-8",
    )
    writer = on_s3(writer, f"s3://{bucket}/shared", s3_endpoint)
    assert writer.run_job("etl").state == "SUCCEEDED"

    reader = project_file(
        tmp_path / "b",
        f"name: analysts\ncatalog:\n  url: {catalog_url}\n"
        f"lake:\n  warehouse: s3://{bucket}/shared\n  endpoint: {s3_endpoint}\n",
    )
    queried = sluice_cli(
        "query",
        "run",
        "--format",
        "csv",
        "SELECT count(*) AS n, CAST(sum(orderAmount) * 100 AS BIGINT) AS cents FROM fact_orders",
        cwd=reader,
    )
    assert queried.returncode == 0, queried.stderr
    lines, cents = source_totals(writer)
    assert queried.stdout.split() == ["n,cents", f"{lines},{cents}"]
    assert not (reader / "warehouse").exists()


def test_a_retried_run_reuses_the_tables_it_uploaded(
    tmp_path: Path, source_db: Callable[[int], Path], s3_endpoint: str, bucket: str
) -> None:
    project = on_s3(new_project(tmp_path, source_db(1)), f"s3://{bucket}/wh", s3_endpoint)
    late = project.root / "models" / "zz_late.sql"
    late.write_text("SELECT count(*) AS n, no_such_column FROM gold.fact_orders\n")
    failed = project.run_job("etl")
    assert failed.state == "FAILED"
    orders = objects(s3_endpoint, bucket, "wh/raw.db/orders/data/")
    assert orders == [f"wh/raw.db/orders/data/{failed.run_id}.parquet"]

    late.write_text("SELECT count(*) AS n FROM gold.fact_orders\n")
    resumed = Project.open(project.root).jobs.retry("etl", failed.run_id, wait=True)
    assert resumed.state == "SUCCEEDED", resumed.error
    assert "raw.orders" in resumed.report["reused"]
    assert objects(s3_endpoint, bucket, "wh/raw.db/orders/data/") == orders
    n = Project.open(project.root).query("SELECT n FROM zz_late").table.to_pylist()[0]["n"]
    assert n == source_totals(project)[0]


def test_a_crawler_registers_what_lands_under_an_s3_prefix(
    tmp_path: Path, s3_endpoint: str, bucket: str
) -> None:
    root = project_file(
        tmp_path / "p",
        f"name: lab\nlake:\n  warehouse: s3://{bucket}/wh\n  endpoint: {s3_endpoint}\n"
        f"crawlers:\n  landing:\n    target: s3://{bucket}/landing/\n    database: landing\n",
    )
    s3 = client(s3_endpoint)

    def land(key: str, sql: str, options: str = "FORMAT parquet") -> None:
        local = tmp_path / "files" / key.replace("/", "_")
        local.parent.mkdir(exist_ok=True)
        duckdb.sql(f"COPY ({sql}) TO '{local}' ({options})")
        s3.put_object(Bucket=bucket, Key=f"landing/{key}", Body=local.read_bytes())  # type: ignore[attr-defined]

    land("sales/year=2004/part-0.parquet", "SELECT i AS id, i * 2 AS amount FROM range(1, 11) t(i)")
    land("sales/year=2005/part-0.parquet", "SELECT i AS id, i * 2 AS amount FROM range(1, 4) t(i)")
    land(
        "customers.csv",
        "SELECT * FROM (VALUES (1, 'Paris'), (2, 'NYC')) t(id, city)",
        "FORMAT csv, HEADER",
    )
    s3.put_object(Bucket=bucket, Key="landing/sales/_SUCCESS", Body=b"")  # type: ignore[attr-defined]
    s3.put_object(Bucket=bucket, Key="landing/notes.txt", Body=b"what lands here\n")  # type: ignore[attr-defined]

    report = Project.open(root).crawl("landing")
    assert {str(c.table): c.action for c in report.tables} == {
        "landing.customers": "created",
        "landing.sales": "created",
    }
    assert [issue.path for issue in report.skipped] == [f"s3://{bucket}/landing/notes.txt"]

    def rows(sql: str) -> list[tuple[object, ...]]:
        table = Project.open(root).query(sql, database="landing").table
        return [tuple(row.values()) for row in table.to_pylist()]

    by_year = "SELECT year, count(*), sum(amount) FROM sales GROUP BY year ORDER BY year"
    assert rows(by_year) == [(2004, 10, 110), (2005, 3, 12)]
    assert rows("SELECT city FROM customers ORDER BY id") == [("Paris",), ("NYC",)]
    sales = Project.open(root).lake.current_files(TableName("landing", "sales"))
    assert sorted(sales) == [
        f"s3://{bucket}/landing/sales/year=2004/part-0.parquet",
        f"s3://{bucket}/landing/sales/year=2005/part-0.parquet",
    ]
    copies = objects(s3_endpoint, bucket, "wh/landing.db/customers/data/")
    assert len(copies) == 1 and copies[0].endswith(".parquet")

    again = Project.open(root).crawl("landing")
    assert {c.action for c in again.tables} == {"unchanged"}
    s3.delete_object(Bucket=bucket, Key="landing/sales/year=2005/part-0.parquet")  # type: ignore[attr-defined]
    third = Project.open(root).crawl("landing")
    assert {str(c.table): c.files_removed for c in third.tables} == {
        "landing.customers": 0,
        "landing.sales": 1,
    }
    assert rows(by_year) == [(2004, 10, 110)]
