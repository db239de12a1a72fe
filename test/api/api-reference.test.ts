/**
 * The API reference plugin run on the current proto/: a buf image (with comments) of the
 * module is built, fed to the plugin as a CodeGeneratorRequest, and the page it writes is
 * checked against the descriptors of the same image, element by element.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { create, createFileRegistry, fromBinary, toBinary, type DescFile, type FileRegistry } from '@bufbuild/protobuf';
import {
  CodeGeneratorRequestSchema,
  CodeGeneratorResponseSchema,
  FileDescriptorSetSchema,
  type CodeGeneratorRequest,
  type FileDescriptorSet,
} from '@bufbuild/protobuf/wkt';
import { getComments } from '@bufbuild/protoplugin';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiReferencePlugin, OUTPUT_FILE } from '../../scripts/protoc-gen-api-reference/plugin.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BUF = path.join(ROOT, 'node_modules/.bin/buf');
const PKG = 'powerplane.v1';
const CODE =
  /\b(INVALID_ARGUMENT|NOT_FOUND|ALREADY_EXISTS|PERMISSION_DENIED|RESOURCE_EXHAUSTED|FAILED_PRECONDITION|UNAVAILABLE|UNAUTHENTICATED)\b/g;

let dir: string;
let image: FileDescriptorSet;
let registry: FileRegistry;
let page: string;
let sections: Map<string, string>;

/** The files of the module itself (not the well-known types buf adds as imports). */
function moduleFiles(set: FileDescriptorSet): string[] {
  return set.file.map((f) => f.name).filter((name) => existsSync(path.join(ROOT, 'proto', name)));
}

function request(fileToGenerate: string[], parameter = 'target=ts,package=powerplane.v1'): CodeGeneratorRequest {
  return create(CodeGeneratorRequestSchema, { protoFile: image.file, fileToGenerate, parameter });
}

function generate(req: CodeGeneratorRequest): string {
  const response = apiReferencePlugin.run(req);
  expect(response.error ?? '').toBe('');
  expect(response.file.map((f) => f.name)).toEqual([OUTPUT_FILE]);
  return response.file[0]!.content;
}

/** Text as a reader sees it: Markdown escapes undone, all white space one space. */
function plain(text: string): string {
  return text.replaceAll('\\|', '|').replaceAll('&lt;', '<').replaceAll('<br><br>', ' ').replace(/\s+/g, ' ').trim();
}

/** The comment of an element as written in the .proto, in {@link plain} form. */
function comment(desc: Parameters<typeof getComments>[0]): string {
  const c = getComments(desc);
  return plain((c.leading ?? c.trailing ?? '').replace(/^ /gm, ''));
}

/** The page cut at its anchors: anchor id → the text up to the next anchor. */
function splitSections(text: string): Map<string, string> {
  const parts = text.split(/<a id="([^"]+)"><\/a>/);
  const out = new Map<string, string>();
  for (let i = 1; i < parts.length; i += 2) out.set(parts[i]!, parts[i + 1]!);
  return out;
}

function section(id: string): string {
  const text = sections.get(id);
  expect(text, `section ${id}`).toBeDefined();
  return text!;
}

function documentedFiles(): DescFile[] {
  return [...registry.files].filter((f) => f.proto.package === PKG);
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'api-reference-'));
  const imagePath = path.join(dir, 'image.binpb');
  execFileSync(BUF, ['build', '-o', imagePath], { cwd: ROOT, stdio: 'pipe' });
  image = fromBinary(FileDescriptorSetSchema, readFileSync(imagePath));
  registry = createFileRegistry(image);
  page = generate(request(moduleFiles(image)));
  sections = splitSections(page);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the API reference generated from proto/', () => {
  it('documents every service and method of powerplane.v1 with its comment, request, response and streaming kind', () => {
    const services = documentedFiles().flatMap((f) => f.services);
    expect(services.map((s) => s.name)).toEqual(
      expect.arrayContaining(['TelemetryService', 'ReadingsService', 'DeviceRegistryService', 'DispatchService', 'TokenService']),
    );
    const kinds = {
      unary: 'unary',
      server_streaming: 'server stream',
      client_streaming: 'client stream',
      bidi_streaming: 'bidirectional stream',
    };
    for (const service of services) {
      expect(comment(service)).not.toBe('');
      expect(plain(section(service.typeName))).toContain(comment(service));
      for (const method of service.methods) {
        const text = plain(section(`${service.typeName}.${method.name}`));
        expect(comment(method), `${method.name} has a comment`).not.toBe('');
        expect(text).toContain(comment(method));
        expect(text).toContain(`Request: [${method.input.name}](#${method.input.typeName})`);
        expect(text).toContain(`Response: [${method.output.name}](#${method.output.typeName})`);
        expect(text).toContain(`Kind: ${kinds[method.methodKind]}`);
      }
    }
    expect(plain(section('powerplane.v1.TelemetryService.StreamReadings'))).toContain(
      '`rpc StreamReadings(stream StreamReadingsRequest) returns (stream StreamReadingsResponse)`',
    );
  });

  it('documents every message with its comment, and every field with its number, type, label and comment', () => {
    const messages = documentedFiles().flatMap((f) => f.messages);
    expect(messages.length).toBeGreaterThan(50);
    for (const message of messages) {
      const text = plain(section(message.typeName));
      expect(comment(message), `${message.name} has a comment`).not.toBe('');
      expect(text).toContain(comment(message));
      for (const field of message.fields) {
        const row = text.split('| `').find((r) => r.startsWith(`${field.name}\` | ${field.number} |`));
        expect(row, `${message.name}.${field.name} has a row`).toBeDefined();
        expect(row).toContain(comment(field));
        if (field.fieldKind === 'list') expect(row).toContain('| repeated |');
        if (field.proto.proto3Optional) expect(row).toContain('| optional |');
        if (field.fieldKind === 'message') expect(row).toContain(`[${field.message.typeName.replace(`${PKG}.`, '')}]`);
      }
    }
    expect(plain(section('powerplane.v1.SettlementPeriod'))).toContain('`complete` | 8 | bool |');
  });

  it('documents every enum value with its number and comment', () => {
    for (const desc of documentedFiles().flatMap((f) => f.enums)) {
      const text = plain(section(desc.typeName));
      expect(text).toContain(comment(desc));
      for (const value of desc.values) expect(text).toContain(`| \`${value.name}\` | ${value.number} | ${comment(value)} |`);
    }
  });

  it("lists in the error model the codes each method's comment names", () => {
    for (const service of documentedFiles().flatMap((f) => f.services)) {
      const table = plain(section(`errors.${service.typeName}`));
      for (const name of new Set(comment(service).match(CODE) ?? [])) {
        expect(table.split('|')[0], `${service.name} names ${name}`).toContain(`\`${name}\``);
      }
      for (const method of service.methods) {
        const row = table.split(`| [${method.name}](#${service.typeName}.${method.name}) |`)[1]?.split('|')[0] ?? '';
        const named = [...new Set(comment(method).match(CODE) ?? [])];
        for (const name of named) expect(row, `${method.name} names ${name}`).toContain(`\`${name}\``);
        if (named.length === 0) expect(row.trim()).toBe('—');
      }
    }
    expect(plain(section('errors.powerplane.v1.DispatchService'))).toMatch(/SubmitDispatch\]\([^)]*\) \| `ALREADY_EXISTS` \|/);
    expect(plain(section('error-model'))).toContain('| `RESOURCE_EXHAUSTED` | 8 |');
  });

  it('links every in-page reference to an anchor of the page', () => {
    const targets = [...page.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
    expect(targets.length).toBeGreaterThan(300);
    for (const target of new Set(targets)) expect(sections.has(target), `#${target}`).toBe(true);
  });

  it('writes the same bytes whatever the order of the files it is asked for', () => {
    expect(generate(request(moduleFiles(image).reverse()))).toBe(page);
  });

  it('runs as buf runs it: main.ts answers a CodeGeneratorRequest on stdin', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/protoc-gen-api-reference/main.ts'], {
      cwd: ROOT,
      input: toBinary(CodeGeneratorRequestSchema, request(moduleFiles(image))),
      maxBuffer: 64 * 1024 * 1024,
    });
    expect(run.stderr.toString()).toBe('');
    expect(run.status).toBe(0);
    const response = fromBinary(CodeGeneratorResponseSchema, run.stdout);
    expect(response.file.map((f) => [f.name, f.content])).toEqual([[OUTPUT_FILE, page]]);
  });

  it('refuses a target other than ts and an unknown option, naming them', () => {
    expect(() => apiReferencePlugin.run(request(moduleFiles(image), 'target=js'))).toThrow(/target must be ts/);
    expect(() => apiReferencePlugin.run(request(moduleFiles(image), 'target=ts,pkg=x'))).toThrow(/unknown option "pkg"/);
  });
});
