"""The one way this project parses XML: no network, no external entities, no DTDs, no huge trees."""
from lxml import etree


def safe_parser() -> etree.XMLParser:
    # A new parser per call: lxml parsers are not safe to share between threads.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False,
    )
