#!/usr/bin/env node
// Parses Adaptive Cards with Microsoft's `adaptivecards` library and reports every event it raises.
//
// Usage: node validate.js CARDS.json [--max-version 1.5]
//   CARDS.json holds an array of {"name": str, "card": {...}}.
// Prints one JSON line per card: {"name", "errors": [...], "warnings": [...]}.
// Exit status: 0 when every card is clean, 1 when any card has a problem, 2 on bad input.
//
// Parsing runs with the card's own declared version as the target version, so elements,
// actions and properties newer than that version are reported. The library needs no DOM
// for parsing and validation; only rendering does.
"use strict";

const fs = require("node:fs");
// The package's "main" (lib/) is extensionless ESM that Node cannot load; dist/ is its UMD build.
const AC = require("adaptivecards/dist/adaptivecards.js");

// Highest card version the bot may send: Teams desktop and web render up to 1.5.
const DEFAULT_MAX_VERSION = "1.5";

// Events the library itself treats as advice rather than as a broken card.
const ADVISORY_EVENTS = new Set([
  AC.ValidationEvent.Hint,
  AC.ValidationEvent.Deprecated,
  AC.ValidationEvent.RequiredInputsShouldHaveLabel,
  AC.ValidationEvent.RequiredInputsShouldHaveErrorMessage,
]);

function parseArgs(argv) {
  const args = { file: undefined, maxVersion: DEFAULT_MAX_VERSION };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--max-version") {
      args.maxVersion = argv[++i];
    } else if (args.file === undefined) {
      args.file = argv[i];
    } else {
      throw new Error(`unexpected argument: ${argv[i]}`);
    }
  }
  if (!args.file) {
    throw new Error("usage: node validate.js CARDS.json [--max-version X.Y]");
  }
  return args;
}

function readBatch(file) {
  const batch = JSON.parse(fs.readFileSync(file, "utf8"));
  if (!Array.isArray(batch)) {
    throw new Error(`${file}: expected a JSON array of {"name", "card"} objects`);
  }
  return batch;
}

function validVersion(text) {
  // A throwaway context: the card's own parse reports a bad version string.
  const version = AC.Version.parse(typeof text === "string" ? text : undefined, new AC.SerializationContext());
  return version && version.isValid ? version : undefined;
}

function targetVersionOf(json) {
  const declared = validVersion(json.version);
  if (declared && declared.compareTo(AC.Versions.latest) <= 0) {
    return declared;
  }
  return AC.Versions.latest;
}

function quotedName(message) {
  const match = /"([^"]+)"/.exec(message);
  return match ? match[1] : undefined;
}

function versionNote(event, target) {
  // The library calls a type "unknown" when it is merely newer than the target version.
  const registry =
    event.event === AC.ValidationEvent.UnknownElementType
      ? AC.GlobalRegistry.elements
      : event.event === AC.ValidationEvent.UnknownActionType
        ? AC.GlobalRegistry.actions
        : undefined;
  const found = registry && registry.findByName(quotedName(event.message));
  if (found && found.schemaVersion.compareTo(target) > 0) {
    return ` (needs card version ${found.schemaVersion}; the card declares ${target})`;
  }
  return "";
}

function describe(event, target) {
  const phase = AC.ValidationPhase[event.phase];
  const kind = AC.ValidationEvent[event.event];
  const source = event.source && event.source.getJsonTypeName ? ` in ${event.source.getJsonTypeName()}` : "";
  return `${phase} ${kind}${source}: ${event.message}${versionNote(event, target)}`;
}

function withConsoleCaptured(captured, action) {
  // The library reports some problems only through console.warn/error.
  const saved = { warn: console.warn, error: console.error };
  console.warn = (...parts) => captured.push(`console.warn: ${parts.join(" ")}`);
  console.error = (...parts) => captured.push(`console.error: ${parts.join(" ")}`);
  try {
    return action();
  } finally {
    Object.assign(console, saved);
  }
}

function libraryEvents(json, maxVersion) {
  const context = new AC.SerializationContext(targetVersionOf(json));
  const card = new AC.AdaptiveCard();
  card.maxVersion = maxVersion;
  card.parse(json, context);
  const events = [];
  for (let i = 0; i < context.eventCount; i++) {
    events.push(context.getEventAt(i));
  }
  events.push(...card.validateProperties().validationEvents);
  return { events, target: context.targetVersion };
}

function checkCard(entry, maxVersion) {
  const result = { name: entry && entry.name, errors: [], warnings: [] };
  const json = entry && entry.card;
  if (!json || typeof json !== "object" || Array.isArray(json)) {
    result.errors.push("card is not a JSON object");
    return result;
  }
  try {
    const { events, target } = withConsoleCaptured(result.warnings, () => libraryEvents(json, maxVersion));
    for (const event of events) {
      const bucket = ADVISORY_EVENTS.has(event.event) ? result.warnings : result.errors;
      bucket.push(describe(event, target));
    }
  } catch (error) {
    result.errors.push(`library threw: ${error && error.stack ? error.stack : error}`);
  }
  return result;
}

function main(argv) {
  let args;
  let batch;
  try {
    args = parseArgs(argv);
    batch = readBatch(args.file);
  } catch (error) {
    process.stderr.write(`validate.js: ${error.message}\n`);
    return 2;
  }
  const maxVersion = validVersion(args.maxVersion);
  if (!maxVersion) {
    process.stderr.write(`validate.js: bad --max-version ${args.maxVersion}\n`);
    return 2;
  }
  let clean = true;
  for (const entry of batch) {
    const result = checkCard(entry, maxVersion);
    clean = clean && result.errors.length === 0 && result.warnings.length === 0;
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
  return clean ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
