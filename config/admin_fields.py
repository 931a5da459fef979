"""Admin form fields for every model admin and inline of the project."""


class ServerCheckedLengthsMixin:
    """No ``maxlength`` on inputs: a browser cuts pasted text to it without a word (a 210-character URL becomes
    another URL). The form's own max-length check then says what the limit is and nothing is saved."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if formfield is not None:
            formfield.widget.attrs.pop("maxlength", None)
        return formfield
