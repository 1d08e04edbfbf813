"""Regenerates docs/configuration.md from src/config/keys.rs: python3 docs/configuration.py (from the repository root)."""
import re
src=open('src/config/keys.rs').read()
table=src.split('pub(crate) const KEYS: &[Key] = &[')[1].split('\n];')[0]
def calls(text):
    """Each `topic(...)`, `broker(...)` or `topic_only(...)` entry of the table: its kind, its
    arguments' text (parentheses balanced, strings skipped) and its `.scaled(...)` factor."""
    for m in re.finditer(r'\n    (topic|broker|topic_only)\(', text):
        i=m.end(); depth=1; in_str=False
        while depth:
            c=text[i]
            if in_str:
                if c=='\\': i+=1
                elif c=='"': in_str=False
            elif c=='"': in_str=True
            elif c=='(': depth+=1
            elif c==')': depth-=1
            i+=1
        tail=re.match(r'(?:\s*\.(?:synonym_of|scaled)\(([^)]*)\))*', text[i:])
        scale=re.search(r'\.scaled\((\w+)\)', tail.group(0))
        yield m.group(1), text[m.end():i-1], scale.group(1) if scale else None
SCALES={'HOUR_MS':3600000,'MINUTE_MS':60000}
entries=[]
for kind,body,scale in calls(table):
    strs=re.findall(r'"((?:[^"\\]|\\.)*)"', body, re.S)
    name=strs[0]
    topic = strs[1] if kind=='topic' else (name if kind=='topic_only' else None)
    dm=re.search(r'(None|Some\(("([^"]*)"|LONG_MAX)\))', body)
    default=None
    if dm and dm.group(1)!='None':
        default = '9223372036854775807' if dm.group(2)=='LONG_MAX' else dm.group(3)
    doc=' '.join(re.sub(r'\\\s*\n\s*',' ',strs[-1]).split())
    # The topic key's default in its own unit (log.retention.hours=168 is 604800000 ms).
    scaled=default
    if scale and default is not None and re.fullmatch(r'\d+', default):
        scaled=str(int(default)*SCALES[scale])
    entries.append((kind,name,topic,default,doc,scaled))
consts=dict(re.findall(r'const (\w+): &str =\s*"([^"]*)";', src))
ign_block=src.split('const IGNORED: &[(&str, &str)] = &[')[1].split('];')[0]
ignored=[]
for m in re.finditer(r'\("([^"]+)",\s*(?:"([^"]*)"|(\w+))\)', ign_block):
    ignored.append((m.group(1), m.group(2) if m.group(2) is not None else consts[m.group(3)]))
off_block=src.split('const ONLY_OFF: &[(&str, &str, &str)] = &[')[1].split('];')[0]
only_off=re.findall(r'\("([^"]+)",\s*"([^"]*)",\s*"([^"]*)"\)', off_block)
out=[]; w=out.append
w("# Configuration\n")
w("runnel reads Kafka's `server.properties` keys (a file given with `--config`, `--override key=value`, and the flags of `runnel broker`) and Kafka's topic-level keys (CreateTopics, AlterConfigs, IncrementalAlterConfigs, `runnel configs`). Every key that Apache Kafka 4.1 documents is known: its broker and topic key lists are kept as test fixtures in `src/config/kafka/`, and `config::keys::tests` fails if one is missing. Each key is one of:\n")
w("- **implemented**, with Kafka's name, type, default and meaning (differences are said below);")
w("- **accepted with no effect**, because it tunes something runnel does not have (TLS, SASL, quotas, tiered storage, transactions, thread pools): the broker starts, logs one warning per such key at start-up with the reason, and otherwise ignores it, so Kafka's stock `server.properties` starts runnel;")
w("- **accepted only off**: a key that would promise what runnel does not do (an authorizer, tiered storage) is accepted only at the value that means off, and refused otherwise with the reason.\n")
w("Any other key is refused at start-up as unknown, naming the other scope when it belongs there (`retention.ms` is a topic key; the broker key is `log.retention.ms`). DescribeConfigs lists every implemented key with its source (default, static broker config, dynamic default broker config, dynamic broker config, dynamic topic config) and, when asked, its synonyms in Kafka's order; the documentation it returns is the text in the tables below. It lists the keys accepted with no effect too, read-only, with the value given (else Kafka's default and type) and a documentation that says runnel does not use them; a password's value is never shown.\n")
w("`config::keys::tests::the_configuration_doc_lists_every_key` checks that this file names every key. It is generated from `src/config/keys.rs` by `python3 docs/configuration.py`.\n")
w("## Topic-level keys\n")
w("Set per topic (CreateTopics, AlterConfigs, IncrementalAlterConfigs, `runnel topic create --config`, `runnel configs --alter`); a topic without an override takes the broker key that supplies its default. Changes apply to live partitions without a restart: retention at the next check, `segment.bytes` at the next roll, `compression.type` and the timestamp rules at the next append.\n")
w("| key | broker default key | default | meaning |")
w("|---|---|---|---|")
seen=set()
for kind,name,topic,default,doc,_ in entries:
    if topic and topic not in seen:
        seen.add(topic)
        d=next((s2 for k2,n2,t2,d2,_,s2 in entries if t2==topic and d2 is not None), None)
        bk = '(none: topic only)' if kind=='topic_only' else f'`{name}`'
        w(f"| `{topic}` | {bk} | `{d}` | {doc} |")
w("\n## Broker keys\n")
w("| key | default | meaning |")
w("|---|---|---|")
for kind,name,topic,default,doc,_ in entries:
    if kind=='topic_only': continue
    extra = f" Broker default of topic key `{topic}`." if topic else ""
    dd = f'`{default}`' if default is not None else '(none)'
    w(f"| `{name}` | {dd} | {doc}{extra} |")
w("\n### Where runnel differs from Kafka\n")
w("- `listeners` `PLAINTEXT://127.0.0.1:9092`, `process.roles` `broker,controller`, `node.id` `0`, `log.dirs` `./runnel-data`, `controller.listener.names` `CONTROLLER`: one command starts a working single node on localhost with its own data directory.")
w("- `log.flush.scheduler.interval.ms` is 1000 (Kafka: never), so `flush.ms` takes effect; `log.flush.interval.ms` has Kafka's \"never\" as its own default instead of falling back to the scheduler interval.")
w("- `write.caching` (Redpanda's name) is runnel's own: off by default, so acks=all is answered only once the records are synced on the in-sync replicas.")
w("- lz4 and zstd recompress at one level each (lz4_flex's, and ruzstd's fastest, about zstd level 1): `compression.lz4.level` and `compression.zstd.level` are accepted and described, with no effect. `compression.gzip.level` takes effect.")
w("- `min.insync.replicas` is enforced on every partition, one replica included, as Kafka does: acks=all to a partition whose ISR is smaller gets NOT_ENOUGH_REPLICAS before anything is written.")
w("- `cleanup.policy=compact` is refused on client topics until runnel has a log cleaner; `__consumer_offsets` carries it already. The compaction keys (`delete.retention.ms`, `min.compaction.lag.ms`, `max.compaction.lag.ms`, `min.cleanable.dirty.ratio`) are validated, stored and described, and take effect with compaction.")
w("- `max.connections.per.ip.overrides` takes IP addresses; a host name in it is logged and skipped.")
w("- Dynamic broker configs (AlterConfigs and IncrementalAlterConfigs on a BROKER resource, `runnel configs --alter --entity-type brokers --entity-name N` or `--entity-default`) are taken for the broker keys that set topics' defaults and that Kafka 4.1 lets change at run time (per-broker or cluster-wide): `log.retention.ms`, `log.retention.bytes`, `log.segment.bytes`, `log.roll.ms`, `compression.type`, `message.max.bytes`, `min.insync.replicas`, `log.message.timestamp.*`, `log.flush.interval.*` and the like. They are written to the metadata log (`BrokerConfigsSet`: the cluster-wide defaults, resource \"\", or one broker's own, which win), survive restarts in its snapshots, and reach live partitions as topic configs do. DescribeConfigs shows them with the sources DYNAMIC_BROKER_CONFIG and DYNAMIC_DEFAULT_BROKER_CONFIG, first among the synonyms, and those keys as not read-only; the resource \"\" describes the cluster-wide defaults only, as in Kafka. Every other broker key is refused with INVALID_CONFIG and the reason: read-only in Kafka (`log.retention.hours`, `num.partitions`: a restart), accepted with no effect, or not changed at run time by runnel yet (`unclean.leader.election.enable`, which the controller reads at start-up; Kafka's per-broker dynamic keys that are not topic defaults, such as `max.connections`).")
w("\n## Accepted with no effect\n")
w("Each is logged once at start-up (`ignoring KEY=VALUE: REASON`) when set.\n")
w("| key | why runnel ignores it |")
w("|---|---|")
for n,why in ignored:
    w(f"| `{n}` | {why} |")
w("\n## Accepted only off\n")
w("| key | accepted value | why other values are refused |")
w("|---|---|---|")
for n,v,why in only_off:
    w(f"| `{n}` | `{v}` | {why} |")
w("")
open('docs/configuration.md','w').write('\n'.join(out)+'\n')
print(len(entries), len(ignored), len(only_off))
