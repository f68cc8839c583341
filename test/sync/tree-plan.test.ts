import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { planTreeBackup, type TreeAction } from '../../src/sync/tree-plan.js';
import { mailboxKey, type MailboxName, type MailboxStatus } from '../../src/storage/store.js';

// ---------------------------------------------------------------------------------------------
// Helpers

const INBOX: MailboxName = ['INBOX'];

function box(path: string, guid: string, subscribed = false): MailboxStatus {
  return {
    name: path.split('/'),
    guid,
    uidValidity: 1000,
    uidNext: 1,
    highestModseq: 0,
    messages: 0,
    specialUse: [],
    subscribed,
  };
}

const show = (name: MailboxName) => name.join('/');
const isInbox = (name: MailboxName) => name.length === 1 && name[0] === 'INBOX';
const isUnder = (name: MailboxName, parent: MailboxName) => name.length >= parent.length && parent.every((p, i) => name[i] === p);

/**
 * A destination store in memory, with the rules the Maildir store enforces:
 * - rename moves the mailbox and every mailbox under it; it fails when the source is missing,
 *   is INBOX, the target is INBOX or a child of the source, or any moved mailbox would land on
 *   a name some other mailbox holds (Maildir++ renames each child directory, and rename(2)
 *   onto an existing maildir fails);
 * - delete removes that one mailbox only (children stay); never INBOX;
 * - create fails when the name exists or is INBOX, or the GUID is in use;
 * - adopt (updateMailbox with a GUID) fails when the GUID is in use elsewhere;
 * - subscriptions are a list of names, untouched by rename, delete and create.
 * Each action also has to name the GUID the mailbox really has, or the plan is confused.
 */
class Model {
  readonly boxes = new Map<string, { name: MailboxName; guid: string }>();
  readonly subscriptions = new Set<string>();

  constructor(dest: readonly MailboxStatus[]) {
    for (const d of dest) {
      this.boxes.set(mailboxKey(d.name), { name: d.name, guid: d.guid });
      if (d.subscribed) this.subscriptions.add(mailboxKey(d.name));
    }
  }

  private guidInUse(guid: string): string | undefined {
    for (const b of this.boxes.values()) if (b.guid === guid) return show(b.name);
    return undefined;
  }

  apply(a: TreeAction): void {
    const where = (name: MailboxName) => this.boxes.get(mailboxKey(name));
    switch (a.type) {
      case 'rename': {
        assert.ok(!isInbox(a.from), 'INBOX renamed');
        assert.ok(!isInbox(a.to), `renamed ${show(a.from)} onto INBOX`);
        const b = where(a.from);
        assert.ok(b, `rename of missing ${show(a.from)}`);
        assert.equal(b.guid, a.guid, `rename of ${show(a.from)}: GUID in the action is not the mailbox's`);
        assert.ok(!where(a.to), `rename onto existing ${show(a.to)}`);
        assert.ok(!isUnder(a.to, a.from), `rename of ${show(a.from)} into its own child ${show(a.to)}`);
        const moved = [...this.boxes.values()].filter((m) => isUnder(m.name, a.from));
        for (const m of moved) this.boxes.delete(mailboxKey(m.name));
        for (const m of moved) {
          const name = [...a.to, ...m.name.slice(a.from.length)];
          assert.ok(!where(name), `rename ${show(a.from)} -> ${show(a.to)} moves ${show(m.name)} onto existing ${show(name)}`);
          this.boxes.set(mailboxKey(name), { name, guid: m.guid });
        }
        return;
      }
      case 'delete': {
        assert.ok(!isInbox(a.name), 'INBOX deleted');
        const b = where(a.name);
        assert.ok(b, `delete of missing ${show(a.name)}`);
        assert.equal(b.guid, a.guid, `delete of ${show(a.name)}: GUID in the action is not the mailbox's`);
        this.boxes.delete(mailboxKey(a.name));
        return;
      }
      case 'create': {
        assert.ok(!isInbox(a.name), 'INBOX created');
        assert.ok(!where(a.name), `create of existing ${show(a.name)}`);
        const used = this.guidInUse(a.guid);
        assert.equal(used, undefined, `create of ${show(a.name)} with GUID ${a.guid} already held by ${used}`);
        this.boxes.set(mailboxKey(a.name), { name: a.name, guid: a.guid });
        return;
      }
      case 'adopt': {
        const b = where(a.name);
        assert.ok(b, `adopt at missing ${show(a.name)}`);
        assert.equal(b.guid, a.fromGuid, `adopt at ${show(a.name)}: fromGuid is not the mailbox's GUID`);
        const used = this.guidInUse(a.guid);
        assert.ok(used === undefined || used === show(a.name), `adopt of GUID ${a.guid} at ${show(a.name)}, already held by ${used}`);
        b.guid = a.guid;
        return;
      }
      case 'subscribe':
        if (a.subscribed) this.subscriptions.add(mailboxKey(a.name));
        else this.subscriptions.delete(mailboxKey(a.name));
        return;
    }
  }

  /** The destination as `listMailboxes` would report it. */
  list(): MailboxStatus[] {
    return [...this.boxes.values()].map((b) => ({ ...box(show(b.name), b.guid), name: b.name, subscribed: this.subscriptions.has(mailboxKey(b.name)) }));
  }
}

function pairs(list: readonly MailboxStatus[]): string[] {
  return list.map((b) => `${show(b.name)}=${b.guid}`).sort();
}

function subscribedNames(list: readonly MailboxStatus[]): string[] {
  return list.filter((b) => b.subscribed).map((b) => show(b.name)).sort();
}

/** Plans, applies to the model, and checks the destination ends equal to the source with nothing left to do. */
function backup(source: MailboxStatus[], dest: MailboxStatus[]): { actions: TreeAction[]; after: MailboxStatus[] } {
  const actions = planTreeBackup(source, dest);
  const model = new Model(dest);
  for (const a of actions) model.apply(a);
  const after = model.list();
  assert.deepEqual(pairs(after), pairs(source), `actions: ${JSON.stringify(actions)}`);
  assert.deepEqual(subscribedNames(after), subscribedNames(source), `actions: ${JSON.stringify(actions)}`);
  assert.deepEqual(planTreeBackup(source, after), [], 'second plan not empty');
  return { actions, after };
}

const brief = (actions: readonly TreeAction[]) =>
  actions.map((a) => {
    switch (a.type) {
      case 'rename':
        return `rename ${show(a.from)} -> ${show(a.to)}`;
      case 'delete':
        return `delete ${show(a.name)}`;
      case 'create':
        return `create ${show(a.name)}`;
      case 'adopt':
        return `adopt ${show(a.name)} ${a.fromGuid} -> ${a.guid}`;
      case 'subscribe':
        return `${a.subscribed ? 'subscribe' : 'unsubscribe'} ${show(a.name)}`;
    }
  });

// ---------------------------------------------------------------------------------------------
// Examples

test('equal trees: no actions', () => {
  const tree = [box('INBOX', 'g0', true), box('A', 'g1'), box('A/b', 'g2', true)];
  assert.deepEqual(planTreeBackup(tree, tree.map((b) => ({ ...b }))), []);
});

test('missing mailboxes are created with the source GUID and UIDVALIDITY, parents first', () => {
  const source = [box('INBOX', 'g0'), box('A/b', 'g2'), box('A', 'g1'), { ...box('Sent', 'g3'), specialUse: ['\\Sent'], uidValidity: 77 }];
  const { actions } = backup(source, [box('INBOX', 'g0')]);
  assert.deepEqual(brief(actions), ['create A', 'create Sent', 'create A/b']);
  const sent = actions.find((a) => a.type === 'create' && show(a.name) === 'Sent');
  assert.deepEqual(sent, { type: 'create', name: ['Sent'], guid: 'g3', uidValidity: 77, specialUse: ['\\Sent'] });
});

test('extra mailboxes are deleted, children before parents', () => {
  const source = [box('INBOX', 'g0'), box('Keep', 'g1')];
  const dest = [box('INBOX', 'g0'), box('X', 'x1'), box('X/y', 'x2'), box('X/y/z', 'x3'), box('Keep', 'g1'), box('Keep/old', 'x4')];
  const { actions } = backup(source, dest);
  const deletes = brief(actions);
  assert.equal(deletes.length, 4);
  assert.ok(deletes.every((d) => d.startsWith('delete ')));
  assert.ok(deletes.indexOf('delete X/y/z') < deletes.indexOf('delete X/y'));
  assert.ok(deletes.indexOf('delete X/y') < deletes.indexOf('delete X'));
});

test('a mailbox renamed at the source is renamed, not deleted and copied', () => {
  const source = [box('INBOX', 'g0'), box('Projects', 'g1')];
  const dest = [box('INBOX', 'g0'), box('Work', 'g1')];
  const { actions } = backup(source, dest);
  assert.deepEqual(actions, [{ type: 'rename', from: ['Work'], to: ['Projects'], guid: 'g1' }]);
});

test('renaming a parent carries its children: no separate rename for them', () => {
  const source = [box('INBOX', 'g0'), box('New', 'g1'), box('New/c', 'g2'), box('New/c/d', 'g3')];
  const dest = [box('INBOX', 'g0'), box('Old', 'g1'), box('Old/c', 'g2'), box('Old/c/d', 'g3')];
  const { actions } = backup(source, dest);
  assert.deepEqual(brief(actions), ['rename Old -> New']);
});

test('a rename whose children would land on existing mailboxes clears them first', () => {
  // B/x exists without a B: moving A (and A/x) to B would put A/x onto it.
  const source = [box('INBOX', 'g0'), box('B', 'g1'), box('B/x', 'g2')];
  const dest = [box('INBOX', 'g0'), box('A', 'g1'), box('A/x', 'g2'), box('B/x', 'old')];
  const { actions } = backup(source, dest);
  assert.deepEqual(brief(actions), ['delete B/x', 'rename A -> B']);
});

test('a child in the way that the source still wants is parked, then put in place', () => {
  const source = [box('INBOX', 'g0'), box('B', 'g1'), box('B/x', 'g2'), box('C', 'g3')];
  const dest = [box('INBOX', 'g0'), box('A', 'g1'), box('A/x', 'g2'), box('B/x', 'g3')];
  const { actions } = backup(source, dest);
  assert.ok(!actions.some((a) => a.type === 'delete' || a.type === 'create'), JSON.stringify(brief(actions)));
});

test('two mailboxes swapping names go through a temporary name', () => {
  const source = [box('INBOX', 'g0'), box('A', 'ga'), box('B', 'gb')];
  const dest = [box('INBOX', 'g0'), box('A', 'gb'), box('B', 'ga')];
  const { actions } = backup(source, dest);
  assert.equal(actions.length, 3);
  assert.ok(actions.every((a) => a.type === 'rename'), JSON.stringify(actions));
});

test('same name, unrelated GUID: the folder is adopted, not deleted and recreated', () => {
  const source = [box('INBOX', 'g0'), box('Archive', 'g1')];
  const dest = [box('INBOX', 'g0'), box('Archive', 'other')];
  const { actions } = backup(source, dest);
  assert.deepEqual(actions, [{ type: 'adopt', name: ['Archive'], guid: 'g1', fromGuid: 'other' }]);
});

test('INBOX with another GUID is adopted, never deleted', () => {
  const source = [box('INBOX', 'g0')];
  const { actions } = backup(source, [box('INBOX', 'old')]);
  assert.deepEqual(actions, [{ type: 'adopt', name: INBOX, guid: 'g0', fromGuid: 'old' }]);
});

test("INBOX holding another source mailbox's GUID is adopted, and that mailbox created", () => {
  const source = [box('INBOX', 'g0'), box('A', 'g1')];
  const { actions } = backup(source, [box('INBOX', 'g1')]);
  assert.deepEqual(brief(actions), ['adopt INBOX g1 -> g0', 'create A']);
});

test("the source INBOX's GUID on another destination mailbox: INBOX adopts it, that mailbox goes", () => {
  const source = [box('INBOX', 'g0')];
  const { actions } = backup(source, [box('INBOX', 'old'), box('X', 'g0')]);
  assert.ok(!actions.some((a) => a.type !== 'adopt' && a.type !== 'delete'), JSON.stringify(actions));
  assert.ok(actions.some((a) => a.type === 'adopt' && isInbox(a.name) && a.guid === 'g0'));
});

test('a source list without INBOX (filtered) never has INBOX deleted, even when it holds a wanted GUID', () => {
  const actions = planTreeBackup([box('A', 'g1')], [box('INBOX', 'g1'), box('B', 'g2')]);
  const model = new Model([box('INBOX', 'g1'), box('B', 'g2')]);
  for (const a of actions) model.apply(a); // fails on any INBOX rename or delete, or a GUID clash
  assert.deepEqual(pairs(model.list()), ['INBOX=g1']);
});

test('subscriptions follow the source', () => {
  const source = [box('INBOX', 'g0', true), box('A', 'g1', false), box('B', 'g2', true), box('C', 'g3', true)];
  const dest = [box('INBOX', 'g0', true), box('A', 'g1', true), box('B', 'g2', false)];
  const { actions } = backup(source, dest);
  assert.deepEqual(brief(actions), ['create C', 'unsubscribe A', 'subscribe B', 'subscribe C']);
});

test('a subscription stays with the name, not the renamed mailbox', () => {
  // Subscriptions are a list of names: after Old -> New, New is not subscribed until told.
  const source = [box('INBOX', 'g0'), box('New', 'g1', true)];
  const dest = [box('INBOX', 'g0'), box('Old', 'g1', true)];
  const { actions } = backup(source, dest);
  assert.deepEqual(brief(actions), ['rename Old -> New', 'subscribe New']);
});

// ---------------------------------------------------------------------------------------------
// Property

const PART = fc.constantFrom('a', 'b');
// Depth 1 to 3 from a tiny alphabet so names collide; INBOX may have children.
const nameArb: fc.Arbitrary<string[]> = fc.tuple(fc.constantFrom('a', 'b', 'c', 'INBOX'), fc.array(PART, { maxLength: 2 })).map(([h, t]) => [h, ...t]);
const guidOf = (prefix: string, n: number) => `${prefix}${n.toString(16).padStart(31, '0')}`;

const sourceArb: fc.Arbitrary<MailboxStatus[]> = fc
  .tuple(
    fc.uniqueArray(fc.tuple(nameArb, fc.boolean()), { selector: ([n]) => mailboxKey(n), maxLength: 9 }),
    fc.boolean(),
  )
  .map(([entries, inboxSubscribed]) => {
    const list = entries.filter(([n]) => !isInbox(n));
    return [box('INBOX', guidOf('a', 0), inboxSubscribed), ...list.map(([n, sub], i) => ({ ...box(show(n), guidOf('a', i + 1), sub), name: n }))];
  });

type TreeOp =
  | { op: 'rename'; i: number; to: string[] }
  | { op: 'delete'; i: number }
  | { op: 'create'; name: string[]; subscribed: boolean }
  | { op: 'newGuid'; i: number }
  | { op: 'swapGuids'; i: number; j: number }
  | { op: 'toggleSubscribed'; i: number };

const treeOpArb: fc.Arbitrary<TreeOp> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('rename' as const), i: fc.nat(), to: nameArb }, { noNullPrototype: true }) },
  fc.record({ op: fc.constant('delete' as const), i: fc.nat() }, { noNullPrototype: true }),
  { weight: 2, arbitrary: fc.record({ op: fc.constant('create' as const), name: nameArb, subscribed: fc.boolean() }, { noNullPrototype: true }) },
  fc.record({ op: fc.constant('newGuid' as const), i: fc.nat() }, { noNullPrototype: true }),
  fc.record({ op: fc.constant('swapGuids' as const), i: fc.nat(), j: fc.nat() }, { noNullPrototype: true }),
  fc.record({ op: fc.constant('toggleSubscribed' as const), i: fc.nat() }, { noNullPrototype: true }),
);

/** A destination that starts as the source and drifts by store-legal operations. */
function deriveDest(source: readonly MailboxStatus[], ops: readonly TreeOp[]): MailboxStatus[] {
  let list = source.map((b) => ({ ...b }));
  let fresh = 0;
  const pick = (i: number) => list[i % list.length]!; // INBOX is always there
  const taken = (n: MailboxName) => list.some((b) => mailboxKey(b.name) === mailboxKey(n));
  for (const o of ops) {
    switch (o.op) {
      case 'rename': {
        const b = pick(o.i);
        if (isInbox(b.name) || isInbox(o.to) || taken(o.to) || isUnder(o.to, b.name)) break;
        const from = b.name;
        const moved = list.filter((m) => isUnder(m.name, from)).map((m) => ({ ...m, name: [...o.to, ...m.name.slice(from.length)] }));
        const rest = list.filter((m) => !isUnder(m.name, from));
        if (moved.some((m) => rest.some((r) => mailboxKey(r.name) === mailboxKey(m.name)))) break; // a store would refuse
        list = [...rest, ...moved];
        break;
      }
      case 'delete': {
        const b = pick(o.i);
        if (!isInbox(b.name)) list = list.filter((m) => m !== b);
        break;
      }
      case 'create':
        if (!isInbox(o.name) && !taken(o.name)) list.push({ ...box(show(o.name), guidOf('d', ++fresh), o.subscribed), name: o.name });
        break;
      case 'newGuid':
        pick(o.i).guid = guidOf('d', ++fresh);
        break;
      case 'swapGuids': {
        const a = pick(o.i);
        const b = pick(o.j);
        [a.guid, b.guid] = [b.guid, a.guid];
        break;
      }
      case 'toggleSubscribed': {
        const b = pick(o.i);
        b.subscribed = !b.subscribed;
        break;
      }
    }
  }
  return list;
}

test('property: the planned actions turn the destination tree into the source tree, and replanning finds nothing', () => {
  fc.assert(
    fc.property(sourceArb, fc.array(treeOpArb, { maxLength: 8 }), fc.boolean(), (source, ops, reverse) => {
      const dest = deriveDest(source, ops);
      // Stores list in their own order; the plan must not depend on it.
      backup(reverse ? [...source].reverse() : source, reverse ? [...dest].reverse() : dest);
    }),
    { numRuns: 300, includeErrorInReport: true },
  );
});
