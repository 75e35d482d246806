from __future__ import annotations

from typing import Any

from django.db import migrations

from guichet.directory.loading import load_directory


def load_default_directory(apps: Any, schema_editor: Any) -> None:
    load_directory(apps.get_model("directory", "Service"), apps.get_model("directory", "Authority"))


class Migration(migrations.Migration):
    dependencies = [("directory", "0001_initial")]

    operations = [migrations.RunPython(load_default_directory, migrations.RunPython.noop)]
