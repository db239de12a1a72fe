/**
 * Paged listings as one sequence. Every `List*` method of the API pages with `page_size`,
 * `page_token` and `next_page_token`; {@link listAll} follows the tokens for the caller.
 */
import type { CallOptions } from '@connectrpc/connect';

/**
 * Yields every item of a listing, page after page: calls `list` with `request` (its
 * `pageToken` replaced by each `next_page_token`) until a page comes with an empty one,
 * and yields `items(page)` of each. Each page is its own call, with its own deadline and
 * retries; `options` (a signal, headers, a timeout) go with every page. A server that
 * hands back a token it gave before would page forever: that fails with an Error instead.
 *
 * @example
 * for await (const device of listAll(client.devices.listDevices, { site: 'site-a' }, (page) => page.devices)) {
 *   console.log(device.name);
 * }
 */
export async function* listAll<Req extends { pageToken?: string }, Res extends { nextPageToken: string }, Item>(
  list: (request: Req, options?: CallOptions) => Promise<Res>,
  request: Req,
  items: (page: Res) => readonly Item[],
  options?: CallOptions,
): AsyncGenerator<Item, void, undefined> {
  const seen = new Set<string>();
  let pageToken = request.pageToken ?? '';
  for (;;) {
    const page = await list({ ...request, pageToken }, options);
    yield* items(page);
    if (page.nextPageToken === '') return;
    if (seen.has(page.nextPageToken)) throw new Error(`listAll: the server returned page token ${page.nextPageToken} twice`);
    seen.add(page.nextPageToken);
    pageToken = page.nextPageToken;
  }
}
