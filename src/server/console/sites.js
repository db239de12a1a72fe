// The sites' sections, one per site the caller may read: its totals and a row per battery.
// The first draw fills in the rows of the sites on screen at once and those of the sites
// below in later tasks, a few sites each: a wall screen shows its first sites without
// waiting for the rows nobody sees yet, and the page stays responsive meanwhile.
import { syncKeyed } from './dom.js';

/** Set when the header totals and the rows of every site on screen are drawn (benchmarks read it). */
export const FIRST_PAINT_MARK = 'console:first-paint';
/** Set when the rows of every site are drawn for the first time. */
export const ALL_ROWS_MARK = 'console:all-rows';

/** Sites whose rows one later task draws. */
const SITES_PER_TASK = 5;

/**
 * The sites' part of the page, in `sitesEl`. `createView(site)` makes a site's view (see
 * `createSiteView`); `dropView(view)` is called for the view of a site no longer shown.
 */
export function createSites(sitesEl, createView, dropView) {
  const views = new Map();
  let everyRowDrawn = false;
  let draw = 0; // the latest draw: an earlier one's rows left for later are not drawn

  function rowsInto(sites, rowsOf, nowMs, maxAgeMs) {
    for (const site of sites) {
      const view = views.get(site);
      if (view) view.updateRows(rowsOf(site), nowMs, maxAgeMs);
    }
  }

  return {
    views,
    /**
     * Shows the sites `names` in order: each one's totals (`totalsOf(site)`, a SiteSummary)
     * and rows (`rowsOf(site)`, for `updateRows`). Returns how many sites' rows are drawn on
     * return: every one once all have been drawn before (or a former draw's rows are still
     * being filled in), else those whose section begins above the bottom of the window; the
     * others follow in later tasks, and {@link ALL_ROWS_MARK} is set after the last.
     */
    render({ names, totalsOf, rowsOf, nowMs, maxAgeMs }) {
      const pending = !everyRowDrawn && draw > 0;
      const d = ++draw;
      syncKeyed(
        sitesEl,
        names,
        (site) => site,
        (site) => {
          const view = createView(site);
          views.set(site, view);
          return view.el;
        },
        (_, site) => views.get(site).updateTotals(totalsOf(site), nowMs),
      );
      for (const [site, view] of views) {
        if (names.includes(site)) continue;
        dropView(view);
        views.delete(site);
      }
      if (everyRowDrawn || pending || names.length === 0) {
        rowsInto(names, rowsOf, nowMs, maxAgeMs);
        if (names.length > 0) finished();
        return names.length;
      }
      // Each site's rows push the sites after it down: measure the next one's place only
      // after drawing the one before.
      const bottom = window.innerHeight;
      let onScreen = 0;
      while (onScreen < names.length && views.get(names[onScreen]).el.getBoundingClientRect().top < bottom) {
        rowsInto([names[onScreen]], rowsOf, nowMs, maxAgeMs);
        onScreen++;
      }
      const rest = names.slice(onScreen);
      const next = () => {
        if (d !== draw) return;
        rowsInto(rest.splice(0, SITES_PER_TASK), rowsOf, nowMs, maxAgeMs);
        if (rest.length > 0) setTimeout(next, 0);
        else finished();
      };
      if (rest.length > 0) setTimeout(next, 0);
      else finished();
      return onScreen;
    },
  };

  function finished() {
    everyRowDrawn = true;
    if (!performance.getEntriesByName(ALL_ROWS_MARK).length) performance.mark(ALL_ROWS_MARK);
  }
}
