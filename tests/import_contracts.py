"""An import-linter contract type for "only an app's public modules are imported from outside it".

import-linter's own types say who may not import a package (forbidden, protected) but not "anything but
these modules of it"; this one does, so a new internal module is private without being listed anywhere.
Configured in .importlinter.
"""
import grimp
from importlinter import Contract, ContractCheck, fields, output


class PublicModulesContract(Contract):
    """Modules of `package` other than `public` (and their submodules) are imported only from inside it.

    Options:
        - package: the app, e.g. dispatcher.
        - public: its modules others may import, e.g. dispatcher.models, dispatcher.selectors.
        - exempt_importers: packages allowed everything (the composition root, config).
    """

    type_name = "public_modules"

    package = fields.StringField()
    public = fields.ListField(subfield=fields.StringField())
    exempt_importers = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        package = str(self.package)
        public = [str(name) for name in self.public]
        exempt = [str(name) for name in (self.exempt_importers or [])]

        def within(module: str, roots: list[str]) -> bool:
            return any(module == root or module.startswith(root + ".") for root in roots)

        illegal = []
        for imported in sorted(graph.find_descendants(package)):
            if within(imported, public):
                continue
            for importer in sorted(graph.find_modules_that_directly_import(imported)):
                if within(importer, [package]) or within(importer, exempt):
                    continue
                lines = [detail["line_number"] for detail in graph.get_import_details(importer=importer,
                                                                                      imported=imported)]
                illegal.append((importer, imported, lines))
        return ContractCheck(kept=not illegal, metadata={"illegal": illegal, "public": public})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error(f"Only {', '.join(check.metadata['public'])} may be imported from outside "
                           f"{self.package}:", bold=False)
        output.new_line()
        for importer, imported, lines in check.metadata["illegal"]:
            output.print_error(f"- {importer} -> {imported} (l.{', '.join(map(str, lines))})", bold=False)
        output.new_line()
