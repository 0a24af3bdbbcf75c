"""Keep the translations complete:

    python -m tools.i18n            list the texts of the pages that have no translation
    python -m tools.i18n --update   add them (empty) to headend/web/i18n/<lang>.po

The texts are the msgids of the templates (Babel's Jinja extractor), the
ones the page code marks with _() or N_() (Babel's Python extractor), and
the ones the code passes to _() at run time (headend.web.i18n.dynamic())."""
import os
import sys

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from headend.web import i18n

TEMPLATES = os.path.join(i18n.HERE, "templates")


def msgids():
    ids = set(i18n.dynamic())
    for _fn, _line, msg, _c, _ctx in extract_from_dir(TEMPLATES, method_map=[("**.html", "jinja2")],
                                                       options_map={"**.html": {"extensions": "jinja2.ext.i18n"}}):
        ids.add(msg[0] if isinstance(msg, tuple) else msg)
    # texts the page code marks with _() or N_() (receipts, messages of the pages)
    for _fn, _line, msg, _c, _ctx in extract_from_dir(i18n.HERE, method_map=[("**.py", "python")]):
        ids.add(msg[0] if isinstance(msg, tuple) else msg)
    return ids


def po_path(lang):
    return os.path.join(i18n.HERE, "i18n", lang.replace("-", "_") + ".po")


def missing(lang):
    have = i18n.catalog(lang)
    return sorted(m for m in msgids() if not have.get(m))


def main(argv):
    bad = 0
    for lang in i18n.LANGUAGES:
        if lang == "en":
            continue
        miss = missing(lang)
        for m in miss:
            print("%s: no translation for %r" % (lang, m))
        bad += len(miss)
        if "--update" in argv and miss:
            path = po_path(lang)
            cat = read_po(open(path, "rb")) if os.path.exists(path) else Catalog(locale=lang.replace("-", "_"))
            for m in miss:
                cat.add(m, "")
            with open(path, "wb") as f:
                write_po(f, cat, width=100)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
