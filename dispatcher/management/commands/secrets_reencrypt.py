from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from dispatcher.crypto import EncryptedTextField, reencrypted


class Command(BaseCommand):
    help = ("Encrypt every stored secret again with the first of WEBHOOK_SECRETS_KEYS, so that the other keys "
            "can be removed (key rotation).")

    def handle(self, *args, **options) -> None:
        quote = connection.ops.quote_name
        for model in apps.get_models():
            fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            if not fields:
                continue
            table, pk = quote(model._meta.db_table), quote(model._meta.pk.attname)
            columns = [quote(f.attname) for f in fields]  # no db_column: the attribute is the column
            count = 0
            # Raw column values: the tokens themselves, not the text the field decrypts them to.
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SELECT {pk}, {', '.join(columns)} FROM {table}")  # noqa: S608 - model names
                for row_pk, *tokens in cursor.fetchall():
                    changes = [(column, reencrypted(token)) for column, token in zip(columns, tokens, strict=True)
                               if token]
                    if changes:
                        assignments = ", ".join(f"{column} = %s" for column, _ in changes)
                        cursor.execute(f"UPDATE {table} SET {assignments} WHERE {pk} = %s",  # noqa: S608
                                       [value for _, value in changes] + [row_pk])
                        count += 1
            self.stdout.write(f"{model._meta.label}: {count} row(s) encrypted again")
