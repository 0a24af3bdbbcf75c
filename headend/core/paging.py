"""Pages of a list, filtered and searched in the database: every list the
API and the dashboard show is one page of a query (docs/headend-guide.md,
"Lists that scale").

    paging = Paging(limit=100, offset=0, q="A1")             # api/deps.PagingDep builds it from ?limit&offset&q
    query = search(select(Meter), paging.q, Meter.meter_id)  # case-insensitive "contains", wildcards escaped
    page = paginate(session, query.order_by(Meter.id), paging)
    page.items, page.total, page.next_offset                 # None on the last page
    rows_or_page = listed(session, query, paging, Meter.meter_id)   # what the services' list_* return:
                                                             # every row without paging, else a Page
    paginate(..., count=False)                               # tables that grow for ever (audit, events):
                                                             # no total, one row more tells if a next page exists

Order the query by something unique (an id last) so pages do not overlap.
"""
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 10 ** 7
MAX_Q = 100


@dataclass(frozen=True)
class Paging:
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    q: str = ""

    def __post_init__(self):
        if not 1 <= self.limit <= MAX_LIMIT or not 0 <= self.offset <= MAX_OFFSET or len(self.q) > MAX_Q:
            raise ValueError("paging out of range: limit 1..%d, offset 0..%d, q at most %d characters"
                             % (MAX_LIMIT, MAX_OFFSET, MAX_Q))


@dataclass
class Page:
    items: list
    total: object           # int, or None when not counted (then `more` says if a next page exists)
    limit: int
    offset: int
    more: bool = False
    extra: dict = field(default_factory=dict)     # what a page shows besides its rows (filters...)

    @property
    def next_offset(self):
        end = self.offset + len(self.items)
        if self.total is None:
            return end if self.more else None
        return end if end < self.total else None

    @property
    def prev_offset(self):
        return max(0, self.offset - self.limit) if self.offset > 0 else None

    @property
    def first(self):
        """1-based number of the first row shown (0 when empty)."""
        return self.offset + 1 if self.items else 0

    @property
    def last(self):
        return self.offset + len(self.items)


def like_pattern(text):
    """'50%_off' -> '%50\\%\\_off%' (a literal "contains" for LIKE ... ESCAPE '\\')."""
    esc = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + esc + "%"


def search(query, q, *columns):
    """Rows where any of `columns` contains q (ignoring case); q empty: all."""
    q = (q or "").strip()
    if not q:
        return query
    pat = like_pattern(q)
    return query.where(or_(*[c.ilike(pat, escape="\\") for c in columns]))


def paginate(session, query, paging, scalars=True, count=True):
    """One page of `query` and the number of rows of all pages (count=False:
    not counted, see Page.more)."""
    total = None
    if count:
        total = session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    res = session.execute(query.offset(paging.offset).limit(paging.limit + (0 if count else 1)))
    items = list(res.scalars().all() if scalars else res.all())
    more = len(items) > paging.limit
    return Page(items=items[:paging.limit], total=total, limit=paging.limit, offset=paging.offset, more=more)


def listed(session, query, paging=None, *search_in):
    """Every row of `query` (paging None), or the page `paging` asks for,
    searched in the columns `search_in`."""
    if paging is None:
        return session.exec(query).all()
    return paginate(session, search(query, paging.q, *search_in), paging)


def paginate_list(rows, paging):
    """A page of a list already in memory (a few hundred rows at most)."""
    rows = list(rows)
    return Page(items=rows[paging.offset:paging.offset + paging.limit], total=len(rows), limit=paging.limit,
                offset=paging.offset)
