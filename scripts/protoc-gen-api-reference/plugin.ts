/**
 * protoc-gen-api-reference: a protoc plugin, built on @bufbuild/protoplugin, that writes the
 * API reference (`api-reference.md`) from the comments of the .proto files. `buf generate`
 * runs it through buf.gen.yaml (out: docs), so the page follows every change to proto/.
 *
 * Options: `package=<name>` is the package documented in full (default `powerplane.v1`), and
 * `target=ts` is required: protoplugin would otherwise transpile the output as TypeScript.
 */
import { createEcmaScriptPlugin, type Schema } from '@bufbuild/protoplugin';
import { renderApiReference } from './render.ts';

/** The file the plugin writes, relative to its `out` directory. */
export const OUTPUT_FILE = 'api-reference.md';

/** The package documented when the `package` option is not given. */
export const DEFAULT_PACKAGE = 'powerplane.v1';

/** The plugin's own options, beside protoplugin's standard ones. */
export interface ApiReferenceOptions {
  readonly package: string;
}

function parseOptions(raw: { key: string; value: string }[]): ApiReferenceOptions {
  let pkg = DEFAULT_PACKAGE;
  for (const { key, value } of raw) {
    if (key !== 'package') throw new Error(`unknown option "${key}" (this plugin takes package=<name> and target=ts)`);
    if (!/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/.test(value))
      throw new Error(`option package must be a protobuf package name (got "${value}")`);
    pkg = value;
  }
  return { package: pkg };
}

function generate(schema: Schema<ApiReferenceOptions>): void {
  if (schema.targets.length !== 1 || schema.targets[0] !== 'ts') {
    throw new Error(`option target must be ts, the page is Markdown (got target=${schema.targets.join('+')})`);
  }
  const pkg = schema.options.package;
  if (!schema.files.some((f) => f.proto.package === pkg)) throw new Error(`no file of package ${pkg} among the files to generate`);
  schema.generateFile(OUTPUT_FILE).print(renderApiReference(schema.files, { pkg }).replace(/\n$/, ''));
}

/** The plugin, to run with `runNodeJs` (main.ts) or to call in process (tests). */
export const apiReferencePlugin = createEcmaScriptPlugin<ApiReferenceOptions>({
  name: 'protoc-gen-api-reference',
  version: 'v1',
  parseOptions,
  generateTs: generate,
});
