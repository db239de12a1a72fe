import { describe, expect, it } from 'vitest';
import { listAll } from './paging.ts';

type Request = { site?: string; pageToken?: string };
type Page = { items: string[]; nextPageToken: string };

/** A listing over `pages` (page token = index as text), recording the requests it got. */
function pagedList(pages: Page[]) {
  const requests: Request[] = [];
  const list = (request: Request) => {
    requests.push(request);
    return Promise.resolve(pages[Number(request.pageToken || '0')]!);
  };
  return { list, requests };
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('listAll', () => {
  it('follows next_page_token until an empty one, keeping the filters', async () => {
    const { list, requests } = pagedList([
      { items: ['a', 'b'], nextPageToken: '1' },
      { items: [], nextPageToken: '2' },
      { items: ['c'], nextPageToken: '' },
    ]);
    expect(await collect(listAll(list, { site: 'site-a' }, (page) => page.items))).toEqual(['a', 'b', 'c']);
    expect(requests).toEqual([
      { site: 'site-a', pageToken: '' },
      { site: 'site-a', pageToken: '1' },
      { site: 'site-a', pageToken: '2' },
    ]);
  });

  it("starts from the caller's page token", async () => {
    const { list } = pagedList([
      { items: ['a'], nextPageToken: '1' },
      { items: ['b'], nextPageToken: '' },
    ]);
    expect(await collect(listAll(list, { pageToken: '1' }, (page) => page.items))).toEqual(['b']);
  });

  it('fails instead of paging forever when the server repeats a token', async () => {
    const { list, requests } = pagedList([
      { items: ['a'], nextPageToken: '1' },
      { items: ['b'], nextPageToken: '1' },
    ]);
    await expect(collect(listAll(list, {}, (page) => page.items))).rejects.toThrow('listAll: the server returned page token 1 twice');
    expect(requests).toHaveLength(2);
  });
});
