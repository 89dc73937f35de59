"""mysql.writer names the missing target schema, not the connection's database, when it does not exist."""

from __future__ import annotations

import pyarrow as pa
import pytest
from osiris_drivers._common import StepError

from tests.integration.test_mysql_drivers import _write


@pytest.mark.db
def test_a_missing_target_schema_is_named(mysql_db, tmp_path):
    data = pa.table({"id": [1, 2]})
    with pytest.raises(StepError) as info:
        _write(mysql_db.connection, tmp_path, data, table="t", schema="no_such_schema_x", create_table=True)
    assert "Database 'no_such_schema_x'" in info.value.message
    assert mysql_db.database not in info.value.message
    assert "schema" in info.value.hint
