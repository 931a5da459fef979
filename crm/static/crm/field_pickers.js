'use strict';
// Field pickers: the autocompletes that choose a CRM field (a rule's trigger field, a condition's field and
// "through lookup", a time-based action's date field, a capture's target). The admin marks each with
// data-field-picker, the kind of field that fits there (lookup, date, writable, any), and a condition's field
// with data-through-lookup, the name of its row's "through lookup" input. Every search sends these with the
// module chosen on the page (#id_module), and the list holds only fields that fit
// (crm.admin.FieldAdmin.get_search_results); the rule and webhook services check the choice again on save.
{
    const $ = django.jQuery;

    function narrowing(element) {
        const params = {field_kind: element.dataset.fieldPicker};
        const module = document.getElementById('id_module');
        if (module && module.value) {
            params.for_module = module.value;
        }
        if (element.dataset.throughLookup) {
            const lookup = document.getElementById(element.id.replace(/[^-]+$/, element.dataset.throughLookup));
            if (lookup && lookup.value) {
                params.through_lookup = lookup.value;
            }
        }
        return params;
    }

    function setUp(element) {
        // Django's autocomplete.js (loaded before this file) set select2 up; this sets it up again, with a
        // search that says what the picker is for.
        $(element).select2({
            ajax: {
                data: (params) => Object.assign({
                    term: params.term,
                    page: params.page,
                    app_label: element.dataset.appLabel,
                    model_name: element.dataset.modelName,
                    field_name: element.dataset.fieldName
                }, narrowing(element))
            }
        });
    }

    $(function() {
        $('.admin-autocomplete[data-field-picker]').not('[name*=__prefix__]').each((i, element) => setUp(element));
    });

    document.addEventListener('formset:added', (event) => {
        $(event.target).find('.admin-autocomplete[data-field-picker]').each((i, element) => setUp(element));
    });
}
