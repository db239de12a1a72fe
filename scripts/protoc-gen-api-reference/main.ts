/**
 * Entry point of protoc-gen-api-reference: reads a CodeGeneratorRequest on stdin and writes
 * the response on stdout. buf.gen.yaml runs it as `node --import tsx <this file>`.
 */
import { runNodeJs } from '@bufbuild/protoplugin';
import { apiReferencePlugin } from './plugin.ts';

runNodeJs(apiReferencePlugin);
