// prisma/migrations against a real PostgreSQL: the project's migrate step records migrations the
// way Prisma does, and the migrations build exactly the database that prisma/schema.prisma
// declares (the drift check). The expectation side of the drift check is derived from the schema
// text by the small parser below, never copied by hand, so editing the schema without adding a
// migration fails this test.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { applyMigrations, MigrationError } from '@farm/db';
import { createTestDatabase, reserveTestDatabase, type TestDatabase } from '../helpers/database';

const ROOT = resolve(__dirname, '../..');
const SCHEMA_FILE = join(ROOT, 'prisma/schema.prisma');
const MIGRATIONS_DIR = join(ROOT, 'prisma/migrations');
const GENERATED_CLIENT_CLASS = join(ROOT, 'libs/db/src/generated/internal/class.ts');
const PRISMA_LOCK_KEY = 72707369;

// ---------------------------------------------------------------------------------------------
// A small parser for the parts of the Prisma schema language that shape a PostgreSQL database.
// It is line-oriented like PSL itself (one field or block attribute per line) and throws on
// anything it does not understand, so it can never silently skip something that matters.
// ---------------------------------------------------------------------------------------------

type Value =
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: string }
  /** An identifier (`Desc`, `true`, `BuildStatus`), with arguments when called (`now()`). */
  | { kind: 'call'; name: string; args: Arg[] | null }
  | { kind: 'array'; items: Value[] };

interface Arg {
  name: string | null;
  value: Value;
}

interface Attribute {
  /** `id`, `default`, `db.Uuid`, ... (without `@` / `@@`) */
  name: string;
  args: Arg[];
}

interface FieldDecl {
  name: string;
  type: string;
  optional: boolean;
  list: boolean;
  attributes: Attribute[];
}

interface ModelDecl {
  name: string;
  fields: FieldDecl[];
  attributes: Attribute[];
}

interface EnumDecl {
  name: string;
  dbName: string;
  values: { name: string; dbName: string }[];
}

interface SchemaDecl {
  provider: string | null;
  models: ModelDecl[];
  enums: EnumDecl[];
}

interface Token {
  kind: 'ident' | 'string' | 'number' | 'punct';
  text: string;
}

class Cursor {
  private pos = 0;

  constructor(
    private readonly tokens: Token[],
    private readonly where: string,
  ) {}

  get done(): boolean {
    return this.pos >= this.tokens.length;
  }

  peek(offset = 0): Token | undefined {
    return this.tokens[this.pos + offset];
  }

  next(): Token {
    const token = this.tokens[this.pos++];
    if (!token) this.fail('unexpected end of line');
    return token;
  }

  eat(punct: string): boolean {
    const token = this.peek();
    if (token?.kind === 'punct' && token.text === punct) {
      this.pos++;
      return true;
    }
    return false;
  }

  expect(punct: string): void {
    if (!this.eat(punct)) this.fail(`expected "${punct}"`);
  }

  ident(): string {
    const token = this.next();
    if (token.kind !== 'ident') this.fail(`expected a name, found "${token.text}"`);
    return token.text;
  }

  fail(message: string): never {
    throw new Error(`schema.prisma ${this.where}: ${message}`);
  }
}

function tokenize(line: string, where: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const rest = line.slice(i);
    if (/^\s/.test(rest)) {
      i++;
    } else if (rest.startsWith('//')) {
      break; // comment or /// doc comment
    } else if (rest.startsWith('"')) {
      let text = '';
      for (i++; i < line.length && line[i] !== '"'; i++) {
        if (line[i] === '\\') {
          i++;
          text += line[i] === 'n' ? '\n' : line[i] === 't' ? '\t' : (line[i] ?? '');
        } else {
          text += line[i];
        }
      }
      if (i >= line.length) throw new Error(`schema.prisma ${where}: unterminated string`);
      i++;
      tokens.push({ kind: 'string', text });
    } else if (rest.startsWith('@@')) {
      tokens.push({ kind: 'punct', text: '@@' });
      i += 2;
    } else {
      const ident = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest);
      const number = /^-?\d+(\.\d+)?/.exec(rest);
      if (ident) {
        tokens.push({ kind: 'ident', text: ident[0] });
        i += ident[0].length;
      } else if (number) {
        tokens.push({ kind: 'number', text: number[0] });
        i += number[0].length;
      } else if ('@.()[]{},:?='.includes(rest[0] ?? '')) {
        tokens.push({ kind: 'punct', text: rest[0] ?? '' });
        i++;
      } else {
        throw new Error(`schema.prisma ${where}: unexpected "${rest[0]}"`);
      }
    }
  }
  return tokens;
}

function parseValue(c: Cursor): Value {
  const token = c.next();
  if (token.kind === 'string') return { kind: 'string', value: token.text };
  if (token.kind === 'number') return { kind: 'number', value: token.text };
  if (token.kind === 'punct' && token.text === '[') {
    const items: Value[] = [];
    while (!c.eat(']')) {
      if (items.length > 0) c.expect(',');
      items.push(parseValue(c));
    }
    return { kind: 'array', items };
  }
  if (token.kind === 'ident') {
    return { kind: 'call', name: token.text, args: c.eat('(') ? parseArgs(c) : null };
  }
  return c.fail(`unexpected "${token.text}"`);
}

/** Arguments after an opening parenthesis, up to and including the closing one. */
function parseArgs(c: Cursor): Arg[] {
  const args: Arg[] = [];
  while (!c.eat(')')) {
    if (args.length > 0) c.expect(',');
    const named = c.peek()?.kind === 'ident' && c.peek(1)?.text === ':';
    const name = named ? c.ident() : null;
    if (named) c.expect(':');
    args.push({ name, value: parseValue(c) });
  }
  return args;
}

/** After `@` or `@@`: a dotted name (`db.Timestamptz`) and optional arguments. */
function parseAttribute(c: Cursor): Attribute {
  let name = c.ident();
  while (c.eat('.')) name += `.${c.ident()}`;
  return { name, args: c.eat('(') ? parseArgs(c) : [] };
}

function parseAttributes(c: Cursor, marker: '@' | '@@'): Attribute[] {
  const attributes: Attribute[] = [];
  while (!c.done) {
    if (!c.eat(marker)) c.fail(`expected ${marker}attribute, found "${c.peek()?.text}"`);
    attributes.push(parseAttribute(c));
  }
  return attributes;
}

function parseField(c: Cursor): FieldDecl {
  const name = c.ident();
  const type = c.ident();
  if (c.peek()?.text === '(') c.fail(`type ${type}(...) is not supported by this parser`);
  let list = false;
  if (c.eat('[')) {
    c.expect(']');
    list = true;
  }
  const optional = !list && c.eat('?');
  return { name, type, optional, list, attributes: parseAttributes(c, '@') };
}

/** Parses the declarations of a schema file; see the note above for what it accepts. */
function parseSchema(text: string): SchemaDecl {
  const schema: SchemaDecl = { provider: null, models: [], enums: [] };
  let block: { kind: string; name: string; model?: ModelDecl; enum?: EnumDecl } | null = null;

  text.split(/\r?\n/).forEach((line, index) => {
    const where = `line ${index + 1}`;
    const c = new Cursor(tokenize(line, where), where);
    if (c.done) return;

    if (block === null) {
      const kind = c.ident();
      const name = c.ident();
      c.expect('{');
      if (!c.done) c.fail('expected a line break after "{"');
      if (kind === 'model') {
        block = { kind, name, model: { name, fields: [], attributes: [] } };
        schema.models.push(block.model!);
      } else if (kind === 'enum') {
        block = { kind, name, enum: { name, dbName: name, values: [] } };
        schema.enums.push(block.enum!);
      } else if (kind === 'generator' || kind === 'datasource') {
        block = { kind, name };
      } else {
        c.fail(`"${kind}" blocks are not supported by this parser`);
      }
      return;
    }

    if (c.eat('}')) {
      if (!c.done) c.fail('expected a line break after "}"');
      block = null;
      return;
    }

    if (block.kind === 'datasource') {
      const key = c.ident();
      c.expect('=');
      const value = parseValue(c);
      if (key === 'provider' && value.kind === 'string') schema.provider = value.value;
      else if (key !== 'url' && key !== 'directUrl' && key !== 'shadowDatabaseUrl' && key !== 'relationMode') {
        c.fail(`datasource option ${key} is not supported by this parser`);
      } else if (key === 'relationMode') {
        c.fail('relationMode is not supported by this parser (it changes which foreign keys exist)');
      }
    } else if (block.kind === 'generator') {
      // Generators do not shape the database.
    } else if (block.model) {
      if (c.eat('@@')) {
        block.model.attributes.push(parseAttribute(c));
        if (!c.done) c.fail('one block attribute per line');
      } else {
        block.model.fields.push(parseField(c));
      }
    } else if (block.enum) {
      if (c.eat('@@')) {
        const attribute = parseAttribute(c);
        if (attribute.name !== 'map') c.fail(`@@${attribute.name} on an enum is not supported by this parser`);
        block.enum.dbName = stringArg(attribute, 0, null, c.fail.bind(c));
      } else {
        const name = c.ident();
        const attributes = parseAttributes(c, '@');
        const map = attributes.find((a) => a.name === 'map');
        if (attributes.some((a) => a.name !== 'map')) c.fail('only @map is supported on enum values');
        block.enum.values.push({ name, dbName: map ? stringArg(map, 0, null, c.fail.bind(c)) : name });
      }
    }
  });
  if (block !== null) throw new Error('schema.prisma: unterminated block at end of file');
  return schema;
}

function argument(attribute: Attribute, position: number, name: string | null): Value | undefined {
  const named = name === null ? undefined : attribute.args.find((a) => a.name === name);
  return named?.value ?? attribute.args.filter((a) => a.name === null)[position]?.value;
}

function stringArg(
  attribute: Attribute,
  position: number,
  name: string | null,
  fail: (message: string) => never,
): string {
  const value = argument(attribute, position, name);
  if (value?.kind !== 'string') fail(`@${attribute.name} needs a string argument`);
  return value.value;
}

// ---------------------------------------------------------------------------------------------
// Both sides of the drift check are rendered as the same canonical lines, e.g.
//   column Build.status "BuildStatus" NOT NULL DEFAULT 'queued'::"BuildStatus"
// with types and defaults spelled the way PostgreSQL prints them (format_type, pg_get_expr).
// ---------------------------------------------------------------------------------------------

const PRISMA_DEFAULT_TYPES: Record<string, string> = {
  String: 'text',
  Int: 'integer',
  BigInt: 'bigint',
  Boolean: 'boolean',
  DateTime: 'timestamp(3) without time zone',
  Json: 'jsonb',
  Float: 'double precision',
  Decimal: 'numeric(65,30)',
  Bytes: 'bytea',
};

const REFERENTIAL_ACTIONS: Record<string, string> = {
  Cascade: 'CASCADE',
  Restrict: 'RESTRICT',
  NoAction: 'NO ACTION',
  SetNull: 'SET NULL',
  SetDefault: 'SET DEFAULT',
};

/** Identifier as format_type / pg_get_expr print it (quoted unless plain lower case). */
function pgIdent(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

function pgLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** Prisma's default constraint names: `<table>_<columns>_<suffix>`, cut to 63 bytes. */
function constraintName(table: string, columns: string[], suffix: string): string {
  return `${[table, ...columns].join('_').slice(0, 63 - suffix.length - 1)}_${suffix}`;
}

function nativeType(attribute: Attribute, fail: (message: string) => never): string {
  const numbers = attribute.args.map((a) => (a.value.kind === 'number' ? a.value.value : fail('bad @db argument')));
  const precision = numbers.length > 0 ? `(${numbers.join(',')})` : '';
  switch (attribute.name.slice('db.'.length)) {
    case 'Uuid':
      return 'uuid';
    case 'Text':
      return 'text';
    case 'VarChar':
      return `character varying${precision}`;
    case 'Char':
      return `character${precision || '(1)'}`;
    case 'Timestamptz':
      return `timestamp${precision} with time zone`;
    case 'Timestamp':
      return `timestamp${precision} without time zone`;
    case 'Time':
      return `time${precision} without time zone`;
    case 'Timetz':
      return `time${precision} with time zone`;
    case 'Date':
      return 'date';
    case 'Integer':
      return 'integer';
    case 'SmallInt':
      return 'smallint';
    case 'BigInt':
      return 'bigint';
    case 'Boolean':
      return 'boolean';
    case 'JsonB':
      return 'jsonb';
    case 'Json':
      return 'json';
    case 'DoublePrecision':
      return 'double precision';
    case 'Real':
      return 'real';
    case 'Decimal':
      return `numeric${precision}`;
    case 'ByteA':
      return 'bytea';
    case 'Inet':
      return 'inet';
    default:
      return fail(`@${attribute.name} is not supported by this parser`);
  }
}

/** The expected database, as canonical lines, of a schema text. */
function schemaShape(text: string): string[] {
  const schema = parseSchema(text);
  if (schema.provider !== 'postgresql') throw new Error(`schema provider is ${schema.provider}, not postgresql`);
  const models = new Map(schema.models.map((m) => [m.name, m]));
  const enums = new Map(schema.enums.map((e) => [e.name, e]));
  const lines: string[] = [];

  const tableOf = (model: ModelDecl): string => {
    const map = model.attributes.find((a) => a.name === 'map');
    return map ? stringArg(map, 0, null, fail(model.name)) : model.name;
  };
  const columnOf = (field: FieldDecl): string => {
    const map = field.attributes.find((a) => a.name === 'map');
    return map ? stringArg(map, 0, null, fail(field.name)) : field.name;
  };
  function fail(where: string): (message: string) => never {
    return (message) => {
      throw new Error(`schema.prisma ${where}: ${message}`);
    };
  }

  for (const e of schema.enums) {
    lines.push(`enum ${e.dbName} (${e.values.map((v) => pgLiteral(v.dbName)).join(', ')})`);
  }

  for (const model of schema.models) {
    const table = tableOf(model);
    const scalar = (name: string): FieldDecl => {
      const field = model.fields.find((f) => f.name === name && !models.has(f.type));
      if (!field) return fail(model.name)(`no scalar field ${name}`);
      return field;
    };
    /** `[a, b(sort: Desc)]` as column names, with DESC where asked. */
    const indexColumns = (attribute: Attribute, failHere: (m: string) => never): string[] => {
      const fields = argument(attribute, 0, 'fields');
      if (fields?.kind !== 'array') failHere(`@@${attribute.name} needs a list of fields`);
      return fields.items.map((item) => {
        if (item.kind !== 'call') return failHere('index fields must be field names');
        let column = columnOf(scalar(item.name));
        for (const arg of item.args ?? []) {
          if (arg.name !== 'sort' || arg.value.kind !== 'call')
            failHere(`index field argument ${arg.name} is not supported`);
          if (arg.value.name === 'Desc') column += ' DESC';
        }
        return column;
      });
    };
    lines.push(`table ${table}`);

    for (const field of model.fields) {
      const failHere: (message: string) => never = fail(`${model.name}.${field.name}`);
      const related = models.get(field.type);
      if (related) {
        const relation = field.attributes.find((a) => a.name === 'relation');
        for (const a of field.attributes) if (a.name !== 'relation') failHere(`@${a.name} on a relation field`);
        const fields = relation && argument(relation, -1, 'fields');
        if (!relation || !fields) continue; // the back-relation side holds no column
        const references = argument(relation, -1, 'references');
        if (fields.kind !== 'array' || references?.kind !== 'array')
          failHere('@relation needs fields: [...] and references: [...]');
        const names = (value: Value): string =>
          value.kind === 'call' ? value.name : failHere('relation fields must be field names');
        const own = fields.items.map((item) => scalar(names(item)));
        const referenced = references.items.map((item) => {
          const target = related.fields.find((f) => f.name === names(item));
          if (!target) return failHere(`${related.name} has no field ${names(item)}`);
          return columnOf(target);
        });
        const action = (name: string, fallback: string): string => {
          const value = argument(relation, -1, name);
          if (value === undefined) return REFERENTIAL_ACTIONS[fallback]!;
          if (value.kind !== 'call' || !REFERENTIAL_ACTIONS[value.name]) return failHere(`bad ${name}`);
          return REFERENTIAL_ACTIONS[value.name]!;
        };
        const columns = own.map(columnOf);
        const map = argument(relation, -1, 'map');
        const name = map?.kind === 'string' ? map.value : constraintName(table, columns, 'fkey');
        const onDelete = action('onDelete', own.every((f) => !f.optional) ? 'Restrict' : 'SetNull');
        lines.push(
          `foreign key ${name} ON ${table} (${columns.join(', ')}) REFERENCES ${tableOf(related)} ` +
            `(${referenced.join(', ')}) ON DELETE ${onDelete} ON UPDATE ${action('onUpdate', 'Cascade')}`,
        );
        continue;
      }

      const column = columnOf(field);
      const enumDecl = enums.get(field.type);
      const native = field.attributes.find((a) => a.name.startsWith('db.'));
      let type: string;
      if (enumDecl) {
        if (native) failHere('@db on an enum field');
        type = pgIdent(enumDecl.dbName);
      } else if (native) {
        type = nativeType(native, failHere);
      } else {
        type = PRISMA_DEFAULT_TYPES[field.type] ?? failHere(`type ${field.type} is not supported by this parser`);
      }
      const columnType = field.list ? `${type}[]` : type;

      let defaultExpr: string | null = null;
      for (const attribute of field.attributes) {
        switch (attribute.name) {
          case 'id': {
            const map = argument(attribute, -1, 'map');
            const name = map?.kind === 'string' ? map.value : constraintName(table, [], 'pkey');
            lines.push(`primary key ${name} ON ${table} (${column})`);
            break;
          }
          case 'unique': {
            const map = argument(attribute, -1, 'map');
            const name = map?.kind === 'string' ? map.value : constraintName(table, [column], 'key');
            lines.push(`unique index ${name} ON ${table} (${column})`);
            break;
          }
          case 'default':
            defaultExpr = renderDefault(attribute, type, enumDecl, `${table}_${column}_seq`, failHere);
            break;
          case 'map':
          case 'updatedAt': // set by the client, no database default
          case 'ignore': // hidden from the client, the column still exists
            break;
          default:
            if (!attribute.name.startsWith('db.')) failHere(`@${attribute.name} is not supported by this parser`);
        }
      }
      const nullable = field.optional || field.list; // Prisma never marks a list column NOT NULL
      lines.push(
        `column ${table}.${column} ${columnType}${nullable ? '' : ' NOT NULL'}` +
          (defaultExpr === null ? '' : ` DEFAULT ${defaultExpr}`),
      );
    }

    for (const attribute of model.attributes) {
      const failHere: (message: string) => never = fail(`${model.name} @@${attribute.name}`);
      const map = argument(attribute, -1, 'map');
      switch (attribute.name) {
        case 'map':
          break;
        case 'id': {
          const columns = indexColumns(attribute, failHere);
          const name = map?.kind === 'string' ? map.value : constraintName(table, [], 'pkey');
          lines.push(`primary key ${name} ON ${table} (${columns.join(', ')})`);
          break;
        }
        case 'unique':
        case 'index': {
          for (const arg of attribute.args) {
            if (arg.name !== null && arg.name !== 'fields' && arg.name !== 'map' && arg.name !== 'name') {
              failHere(`argument ${arg.name} is not supported by this parser`);
            }
          }
          const columns = indexColumns(attribute, failHere);
          const unique = attribute.name === 'unique';
          const bare = columns.map((c) => c.replace(/ DESC$/, ''));
          const name = map?.kind === 'string' ? map.value : constraintName(table, bare, unique ? 'key' : 'idx');
          lines.push(`${unique ? 'unique index' : 'index'} ${name} ON ${table} (${columns.join(', ')})`);
          break;
        }
        default:
          failHere('not supported by this parser');
      }
    }
  }
  return lines.sort();
}

function renderDefault(
  attribute: Attribute,
  type: string,
  enumDecl: EnumDecl | undefined,
  sequence: string,
  fail: (message: string) => never,
): string | null {
  const value = argument(attribute, 0, 'value') ?? fail('@default needs a value');
  if (enumDecl) {
    const member = value.kind === 'call' && value.args === null && enumDecl.values.find((v) => v.name === value.name);
    if (!member) return fail('enum default must be one of its values');
    return `${pgLiteral(member.dbName)}::${pgIdent(enumDecl.dbName)}`;
  }
  const cast = type.startsWith('character varying') ? 'character varying' : type;
  switch (value.kind) {
    case 'string':
      return `${pgLiteral(value.value)}::${cast}`;
    case 'number':
      return /^\d+$/.test(value.value) ? value.value : fail('only non-negative integer defaults are supported');
    case 'array':
      return value.items.length === 0 ? `ARRAY[]::${type}[]` : fail('only empty list defaults are supported');
    case 'call':
      if (value.args === null && (value.name === 'true' || value.name === 'false')) return value.name;
      switch (value.name) {
        case 'now':
          return 'CURRENT_TIMESTAMP';
        case 'autoincrement':
          return `nextval(${pgLiteral(pgIdent(sequence))}::regclass)`;
        case 'uuid':
        case 'cuid':
        case 'nanoid':
        case 'ulid':
          return null; // generated by the client
        case 'dbgenerated': {
          const expr = value.args?.[0]?.value;
          return expr?.kind === 'string' ? expr.value : fail('dbgenerated needs a string');
        }
        default:
          return fail(`@default(${value.name}) is not supported by this parser`);
      }
  }
}

const FK_ACTIONS: Record<string, string> = {
  a: 'NO ACTION',
  r: 'RESTRICT',
  c: 'CASCADE',
  n: 'SET NULL',
  d: 'SET DEFAULT',
};

/** The actual database (the connection's current schema), as canonical lines. */
async function databaseShape(client: Client): Promise<string[]> {
  const lines: string[] = [];
  const enums = await client.query<{ name: string; labels: string[] }>(
    `SELECT t.typname AS name, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS labels
       FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE n.nspname = current_schema() GROUP BY t.typname`,
  );
  for (const e of enums.rows) lines.push(`enum ${e.name} (${e.labels.map(pgLiteral).join(', ')})`);

  const tables = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname <> '_prisma_migrations'`,
  );
  for (const t of tables.rows) lines.push(`table ${t.name}`);

  const columns = await client.query<{
    table: string;
    name: string;
    type: string;
    notnull: boolean;
    def: string | null;
  }>(
    `SELECT c.relname AS table, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            a.attnotnull AS notnull, pg_get_expr(d.adbin, d.adrelid) AS def
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname <> '_prisma_migrations'
        AND a.attnum > 0 AND NOT a.attisdropped`,
  );
  for (const col of columns.rows) {
    lines.push(
      `column ${col.table}.${col.name} ${col.type}${col.notnull ? ' NOT NULL' : ''}` +
        (col.def === null ? '' : ` DEFAULT ${col.def}`),
    );
  }

  const constraints = await client.query<{
    name: string;
    kind: string;
    table: string;
    columns: string[];
    ref_table: string | null;
    ref_columns: string[];
    on_delete: string;
    on_update: string;
  }>(
    `SELECT con.conname AS name, con.contype AS kind, c.relname AS table, rc.relname AS ref_table,
            ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
                    JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord) AS columns,
            ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
                    JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord) AS ref_columns,
            con.confdeltype AS on_delete, con.confupdtype AS on_update
       FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_class rc ON rc.oid = con.confrelid
      WHERE n.nspname = current_schema() AND con.contype IN ('p', 'u', 'f') AND c.relname <> '_prisma_migrations'`,
  );
  for (const con of constraints.rows) {
    const on = `ON ${con.table} (${con.columns.join(', ')})`;
    if (con.kind === 'p') lines.push(`primary key ${con.name} ${on}`);
    else if (con.kind === 'u') lines.push(`unique constraint ${con.name} ${on}`);
    else {
      lines.push(
        `foreign key ${con.name} ${on} REFERENCES ${con.ref_table} (${con.ref_columns.join(', ')}) ` +
          `ON DELETE ${FK_ACTIONS[con.on_delete]} ON UPDATE ${FK_ACTIONS[con.on_update]}`,
      );
    }
  }

  // Indexes that back a primary key or unique constraint are reported above.
  const indexes = await client.query<{
    name: string;
    table: string;
    unique: boolean;
    method: string;
    predicate: string | null;
    columns: string[];
  }>(
    `SELECT ic.relname AS name, t.relname AS table, i.indisunique AS unique, am.amname AS method,
            pg_get_expr(i.indpred, i.indrelid) AS predicate,
            ARRAY(SELECT CASE WHEN i.indkey[k - 1] = 0 THEN pg_get_indexdef(i.indexrelid, k, true)
                              ELSE (SELECT a.attname::text FROM pg_attribute a
                                     WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[k - 1]) END
                         || CASE WHEN i.indoption[k - 1] & 1 = 1 THEN ' DESC' ELSE '' END
                    FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k) AS columns
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_am am ON am.oid = ic.relam
      WHERE n.nspname = current_schema() AND t.relname <> '_prisma_migrations'
        AND NOT EXISTS (SELECT 1 FROM pg_constraint con
                         WHERE con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x'))`,
  );
  for (const ix of indexes.rows) {
    lines.push(
      `${ix.unique ? 'unique index' : 'index'} ${ix.name} ON ${ix.table} (${ix.columns.join(', ')})` +
        (ix.method === 'btree' ? '' : ` USING ${ix.method}`) +
        (ix.predicate === null ? '' : ` WHERE ${ix.predicate}`),
    );
  }
  return lines.sort();
}

/** What differs between the schema's database and the actual one; empty when they agree. */
function drift(expected: string[], actual: string[]): string[] {
  const have = new Set(actual);
  const want = new Set(expected);
  return [
    ...expected.filter((line) => !have.has(line)).map((line) => `missing in database: ${line}`),
    ...actual.filter((line) => !want.has(line)).map((line) => `not in schema.prisma: ${line}`),
  ];
}

// ---------------------------------------------------------------------------------------------

function localMigrations(dir = MIGRATIONS_DIR): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort((a, b) => a.localeCompare(b));
}

async function withClient<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe('prisma/migrations', () => {
  const scratch: TestDatabase[] = [];
  const tempDirs: string[] = [];
  let migrated: TestDatabase;
  let actualShape: string[];
  let schemaText: string;

  /** A database name of our own, created by whatever connects first; dropped in afterAll. */
  function reserve(): TestDatabase {
    const db = reserveTestDatabase();
    scratch.push(db);
    return db;
  }

  /** A writable copy of prisma/migrations. */
  function copyMigrations(): string {
    const dir = mkdtempSync(join(tmpdir(), 'farm-migrations-'));
    tempDirs.push(dir);
    cpSync(MIGRATIONS_DIR, dir, { recursive: true });
    return dir;
  }

  beforeAll(async () => {
    schemaText = readFileSync(SCHEMA_FILE, 'utf8');
    migrated = await createTestDatabase();
    scratch.push(migrated);
    actualShape = await withClient(migrated.url, databaseShape);
  });

  afterAll(async () => {
    await Promise.all(scratch.map((db) => db.drop()));
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });

  describe('drift between schema.prisma and the migrations', () => {
    it('the migrated database is exactly what schema.prisma declares', () => {
      expect(drift(schemaShape(schemaText), actualShape)).toEqual([]);
    });

    // A copy of the schema edited in memory, as someone would edit it without a migration.
    const edits: Array<[string, (schema: string) => string, string[]]> = [
      [
        'a new field',
        (s) => edit(s, /^(model Build \{\n)/m, '$1  priority Int @default(0)\n'),
        ['missing in database: column Build.priority integer NOT NULL DEFAULT 0'],
      ],
      [
        'a removed field',
        (s) => edit(s, /^\s*logTail\s+String\?\n/m, ''),
        ['not in schema.prisma: column PlatformBuild.logTail text'],
      ],
      [
        'an optional field made required',
        (s) => edit(s, /^(\s*ref\s+)String\?/m, '$1String '),
        ['missing in database: column Build.ref text NOT NULL', 'not in schema.prisma: column Build.ref text'],
      ],
      [
        'a changed type',
        (s) => edit(s, /^(\s*size\s+)Int\?/m, '$1BigInt?'),
        [
          'missing in database: column PlatformBuild.size bigint',
          'not in schema.prisma: column PlatformBuild.size integer',
        ],
      ],
      [
        'a changed native type',
        (s) => edit(s, /^(\s*createdAt\s+DateTime.*)@db\.Timestamptz\(3\)/m, '$1@db.Timestamptz(6)'),
        ['missing in database: column Build.createdAt timestamp(6) with time zone NOT NULL DEFAULT CURRENT_TIMESTAMP'],
      ],
      [
        'a changed default',
        (s) => edit(s, /^(\s*attempts\s+Int\s+)@default\(0\)/m, '$1@default(1)'),
        ['missing in database: column PlatformBuild.attempts integer NOT NULL DEFAULT 1'],
      ],
      [
        'a new enum value',
        (s) => edit(s, /^(enum BuildStatus \{\n)/m, '$1  pending\n'),
        ["missing in database: enum BuildStatus ('pending', 'queued', 'running', 'succeeded', 'failed', 'canceled')"],
      ],
      [
        'a new index',
        (s) => edit(s, /^(\s*@@index\(\[status\]\)\n)/m, '$1  @@index([repo, commit(sort: Desc)])\n'),
        ['missing in database: index Build_repo_commit_idx ON Build (repo, commit DESC)'],
      ],
      [
        'a dropped unique constraint',
        (s) => edit(s, /^(\s*idempotencyKey\s+String\?\s*)@unique/m, '$1'),
        ['not in schema.prisma: unique index Build_idempotencyKey_key ON Build (idempotencyKey)'],
      ],
      [
        'a changed referential action',
        (s) => edit(s, /onDelete: Cascade/, 'onDelete: Restrict'),
        [
          'missing in database: foreign key PlatformBuild_buildId_fkey ON PlatformBuild (buildId) REFERENCES Build (id) ON DELETE RESTRICT ON UPDATE CASCADE',
        ],
      ],
      [
        'a changed primary key',
        (s) => edit(s, /@@id\(\[buildId, platform\]\)/, '@@id([buildId, position])'),
        ['missing in database: primary key PlatformBuild_pkey ON PlatformBuild (buildId, position)'],
      ],
      [
        'a new model',
        (s) => `${s}\nmodel Agent {\n  id   String @id @db.Uuid\n  name String @unique\n\n  @@map("agents")\n}\n`,
        [
          'missing in database: table agents',
          'missing in database: column agents.id uuid NOT NULL',
          'missing in database: primary key agents_pkey ON agents (id)',
          'missing in database: unique index agents_name_key ON agents (name)',
        ],
      ],
    ];

    it.each(edits)('reports drift: %s', (_what, change, expected) => {
      const found = drift(schemaShape(change(schemaText)), actualShape);
      expect(found).toEqual(expect.arrayContaining(expected));
    });

    it("parses the same models and fields as Prisma's generated client", () => {
      if (!existsSync(GENERATED_CLIENT_CLASS)) {
        throw new Error('generate the client first: PRISMA_SCHEMA_ENGINE_BINARY=/bin/true npx prisma generate');
      }
      const source = readFileSync(GENERATED_CLIENT_CLASS, 'utf8');
      const literal = /config\.runtimeDataModel = JSON\.parse\(("(?:[^"\\]|\\.)*")\)/.exec(source)?.[1];
      if (!literal) throw new Error(`no runtimeDataModel in ${GENERATED_CLIENT_CLASS}`);
      const runtime = JSON.parse(JSON.parse(literal) as string) as {
        models: Record<string, { dbName: string | null; fields: { name: string; kind: string; type: string }[] }>;
      };

      const schema = parseSchema(schemaText);
      const modelNames = new Set(schema.models.map((m) => m.name));
      const enumNames = new Set(schema.enums.map((e) => e.name));
      const parsed = Object.fromEntries(
        schema.models.map((model) => {
          const map = model.attributes.find((a) => a.name === 'map');
          const dbName = map
            ? stringArg(map, 0, null, (m) => {
                throw new Error(m);
              })
            : null;
          const fields = model.fields.map((f) => ({
            name: f.name,
            kind: modelNames.has(f.type) ? 'object' : enumNames.has(f.type) ? 'enum' : 'scalar',
            type: f.type,
          }));
          return [model.name, { dbName, fields }];
        }),
      );
      const generated = Object.fromEntries(
        Object.entries(runtime.models).map(([name, model]) => [
          name,
          { dbName: model.dbName, fields: model.fields.map(({ name: n, kind, type }) => ({ name: n, kind, type })) },
        ]),
      );
      // A mismatch means either this parser misreads the schema or the client is stale
      // (regenerate it).
      expect(parsed).toEqual(generated);
    });
  });

  describe('recording like Prisma', () => {
    it('creates _prisma_migrations with the columns and types Prisma uses', async () => {
      const columns = await withClient(
        migrated.url,
        async (client) =>
          (
            await client.query<{ name: string; type: string; notnull: boolean; def: string | null }>(
              `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
                    pg_get_expr(d.adbin, d.adrelid) AS def
               FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid = '_prisma_migrations'::regclass AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum`,
            )
          ).rows,
      );
      expect(columns).toEqual([
        { name: 'id', type: 'character varying(36)', notnull: true, def: null },
        { name: 'checksum', type: 'character varying(64)', notnull: true, def: null },
        { name: 'finished_at', type: 'timestamp with time zone', notnull: false, def: null },
        { name: 'migration_name', type: 'character varying(255)', notnull: true, def: null },
        { name: 'logs', type: 'text', notnull: false, def: null },
        { name: 'rolled_back_at', type: 'timestamp with time zone', notnull: false, def: null },
        { name: 'started_at', type: 'timestamp with time zone', notnull: true, def: 'now()' },
        { name: 'applied_steps_count', type: 'integer', notnull: true, def: '0' },
      ]);
      const pk = await withClient(migrated.url, (client) =>
        client.query(`SELECT 1 FROM pg_index WHERE indrelid = '_prisma_migrations'::regclass AND indisprimary`),
      );
      expect(pk.rowCount).toBe(1);
    });

    it('records each migration as Prisma does: uuid, sha256 of migration.sql, times, one step', async () => {
      const rows = await withClient(
        migrated.url,
        async (client) => (await client.query('SELECT * FROM _prisma_migrations ORDER BY migration_name')).rows,
      );
      expect(rows.map((r) => r.migration_name)).toEqual(localMigrations());
      for (const row of rows) {
        const file = readFileSync(join(MIGRATIONS_DIR, row.migration_name, 'migration.sql'));
        expect(row).toMatchObject({
          checksum: createHash('sha256').update(file).digest('hex'),
          logs: null,
          rolled_back_at: null,
          applied_steps_count: 1,
        });
        expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        expect(row.finished_at.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());
      }
    });

    it('applying again is a no-op', async () => {
      const snapshot = (client: Client) =>
        client.query('SELECT * FROM _prisma_migrations ORDER BY migration_name').then((r) => r.rows);
      const before = await withClient(migrated.url, snapshot);
      await expect(applyMigrations(migrated.url)).resolves.toEqual({ applied: [] });
      expect(await withClient(migrated.url, snapshot)).toEqual(before);
    });

    it('applies a new migration and records it', async () => {
      const dir = copyMigrations();
      const db = reserve();
      await applyMigrations(db.url, { migrationsDir: dir });
      mkdirSync(join(dir, '29990101000000_build_note'));
      const script = 'ALTER TABLE "Build" ADD COLUMN "note" TEXT;\n';
      writeFileSync(join(dir, '29990101000000_build_note', 'migration.sql'), script);

      const lines: string[] = [];
      await expect(applyMigrations(db.url, { migrationsDir: dir, log: (l) => lines.push(l) })).resolves.toEqual({
        applied: ['29990101000000_build_note'],
      });
      expect(lines).toEqual(['applied migration 29990101000000_build_note']);
      const row = await withClient(
        db.url,
        async (client) =>
          (
            await client.query(
              `SELECT checksum, finished_at IS NOT NULL AS finished, applied_steps_count
               FROM _prisma_migrations WHERE migration_name = '29990101000000_build_note'`,
            )
          ).rows[0],
      );
      expect(row).toEqual({
        checksum: createHash('sha256').update(script).digest('hex'),
        finished: true,
        applied_steps_count: 1,
      });
    });

    it('uses the schema named in the URL, as Prisma does', async () => {
      const db = reserve();
      await applyMigrations(`${db.url}?schema=farm`);
      const found = await withClient(
        db.url,
        async (client) =>
          (
            await client.query(
              `SELECT to_regclass('farm."Build"') IS NOT NULL AS farm_build,
                    to_regclass('farm._prisma_migrations') IS NOT NULL AS farm_migrations,
                    to_regclass('public."Build"') IS NOT NULL AS public_build`,
            )
          ).rows[0],
      );
      expect(found).toEqual({ farm_build: true, farm_migrations: true, public_build: false });
    });
  });

  describe('refusals and failures', () => {
    it('refuses when an applied migration was edited afterwards', async () => {
      const dir = copyMigrations();
      const db = reserve();
      await applyMigrations(db.url, { migrationsDir: dir });
      const [first] = localMigrations(dir);
      const file = join(dir, first!, 'migration.sql');
      writeFileSync(file, `${readFileSync(file, 'utf8')}\n-- an afterthought\n`);

      const attempt = applyMigrations(db.url, { migrationsDir: dir });
      await expect(attempt).rejects.toBeInstanceOf(MigrationError);
      await expect(attempt).rejects.toMatchObject({
        code: 'checksum-mismatch',
        message: expect.stringContaining(first!),
      });
    });

    it('accepts an applied migration whose line endings changed, as Prisma does', async () => {
      const dir = copyMigrations();
      const db = reserve();
      await applyMigrations(db.url, { migrationsDir: dir });
      for (const name of localMigrations(dir)) {
        const file = join(dir, name, 'migration.sql');
        writeFileSync(file, readFileSync(file, 'utf8').replace(/\n/g, '\r\n'));
      }
      await expect(applyMigrations(db.url, { migrationsDir: dir })).resolves.toEqual({ applied: [] });
    });

    it('refuses while a migration is recorded as failed, until it is marked rolled back', async () => {
      const db = await createTestDatabase();
      scratch.push(db);
      await withClient(db.url, (client) =>
        client.query(
          `INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at)
           VALUES (gen_random_uuid()::text, $1, '29990101000000_half_done', now())`,
          ['0'.repeat(64)],
        ),
      );
      await expect(applyMigrations(db.url)).rejects.toMatchObject({
        code: 'failed-migration',
        message: expect.stringContaining('29990101000000_half_done'),
      });

      await withClient(db.url, (client) =>
        client.query(
          `UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = '29990101000000_half_done'`,
        ),
      );
      await expect(applyMigrations(db.url)).resolves.toEqual({ applied: [] });
    });

    it('rolls back a failing migration and records nothing, so it can be fixed and retried', async () => {
      const dir = copyMigrations();
      const db = reserve();
      await applyMigrations(db.url, { migrationsDir: dir });
      const broken = join(dir, '29990101000000_broken');
      mkdirSync(broken);
      writeFileSync(join(broken, 'migration.sql'), 'CREATE TABLE "Half" ("id" INTEGER);\nSELECT 1 / 0;\n');

      await expect(applyMigrations(db.url, { migrationsDir: dir })).rejects.toMatchObject({
        code: 'apply-failed',
        message: expect.stringMatching(/29990101000000_broken.*division by zero/),
      });
      const state = await withClient(
        db.url,
        async (client) =>
          (
            await client.query(
              `SELECT to_regclass('"Half"') IS NOT NULL AS half_table,
                    (SELECT count(*)::int FROM _prisma_migrations WHERE migration_name = '29990101000000_broken') AS rows`,
            )
          ).rows[0],
      );
      expect(state).toEqual({ half_table: false, rows: 0 });

      writeFileSync(join(broken, 'migration.sql'), 'CREATE TABLE "Half" ("id" INTEGER);\n');
      await expect(applyMigrations(db.url, { migrationsDir: dir })).resolves.toEqual({
        applied: ['29990101000000_broken'],
      });
    });

    it('refuses a non-empty schema that has no migration history (it needs a baseline)', async () => {
      const db = reserve();
      await withClient('postgresql://postgres@127.0.0.1:5432/postgres', (client) =>
        client.query(`CREATE DATABASE "${db.name}"`),
      );
      await withClient(db.url, (client) => client.query('CREATE TABLE "Legacy" ("id" INTEGER)'));
      await expect(applyMigrations(db.url)).rejects.toMatchObject({ code: 'schema-not-empty' });
    });
  });

  describe('concurrent starters', () => {
    it('creates the database once and applies each migration once', async () => {
      const db = reserve();
      const results = await Promise.all([1, 2, 3].map(() => applyMigrations(db.url)));
      expect(results.flatMap((r) => r.applied)).toEqual(localMigrations());
      const count = await withClient(
        db.url,
        async (client) => (await client.query('SELECT count(*)::int AS n FROM _prisma_migrations')).rows[0].n,
      );
      expect(count).toBe(localMigrations().length);
    });

    it("waits while another migrator holds Prisma's advisory lock", async () => {
      const db = reserve();
      const empty = mkdtempSync(join(tmpdir(), 'farm-migrations-'));
      tempDirs.push(empty);
      writeFileSync(join(empty, 'migration_lock.toml'), 'provider = "postgresql"\n');
      await applyMigrations(db.url, { migrationsDir: empty }); // creates the database, applies nothing

      const holder = new Client({ connectionString: db.url });
      await holder.connect();
      try {
        await holder.query('SELECT pg_advisory_lock($1)', [PRISMA_LOCK_KEY]);
        const migrating = applyMigrations(db.url);
        const early = await Promise.race([
          migrating.then(() => 'finished'),
          new Promise((settle) => setTimeout(() => settle('waiting'), 500)),
        ]);
        expect(early).toBe('waiting');
        await holder.query('SELECT pg_advisory_unlock($1)', [PRISMA_LOCK_KEY]);
        await expect(migrating).resolves.toEqual({ applied: localMigrations() });
      } finally {
        await holder.end();
      }
    });
  });
});

/** Applies a regular-expression edit that must match, so a reworded schema fails loudly here. */
function edit(text: string, pattern: RegExp, replacement: string): string {
  if (!pattern.test(text)) throw new Error(`schema edit ${pattern} no longer matches schema.prisma; update the test`);
  return text.replace(pattern, replacement);
}
